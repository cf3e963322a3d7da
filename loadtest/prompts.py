"""A domain-mixed prompt set for load tests, written for this project.

Five domains, the four specialists' and ``general``, each with short user
questions of the kind a client would send. :class:`PromptMix` draws
``(domain, prompt)`` pairs with configurable weights, e.g. from
``"medicine=2,law=1,finance=1,code=1,general=1"`` (:func:`parse_weights`).
:class:`Conversation` strings a user's turns into one multi-turn chat, so
that each request carries the earlier turns (the prefix a replica's cache
can hold).

Pure standard library: the locustfile imports this module inside a
gevent-patched Locust process.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DOMAINS", "PROMPTS", "Conversation", "PromptMix", "parse_weights"]

PROMPTS: dict[str, tuple[str, ...]] = {
    "medicine": (
        "What are the early warning signs of a stroke, and why does treatment timing matter?",
        "How does metformin lower blood glucose in patients with type 2 diabetes?",
        "Explain the difference between a viral and a bacterial throat infection.",
        "Which symptoms distinguish iron-deficiency anaemia from vitamin B12 deficiency?",
        "What is the usual first-line treatment for community-acquired pneumonia in adults?",
        "How do beta blockers reduce the heart rate, and who should avoid them?",
        "Describe how the kidneys regulate blood pressure through the renin pathway.",
        "What should a clinician check before prescribing an ACE inhibitor?",
        "Why can long-term use of proton pump inhibitors cause low magnesium?",
        "What are the stages of wound healing after a surgical incision?",
        "How is an asthma exacerbation assessed and managed in the emergency room?",
        "Which vaccines are recommended for adults over sixty-five?",
    ),
    "law": (
        "What elements must a plaintiff prove to win a negligence claim?",
        "Can a landlord keep a security deposit for normal wear and tear?",
        "Explain the difference between a misdemeanor and a felony.",
        "When is a verbal agreement enforceable as a contract?",
        "What does the statute of limitations mean for a breach of contract lawsuit?",
        "How does adverse possession let someone acquire title to land?",
        "What rights does a defendant have during a police interrogation?",
        "Explain the doctrine of promissory estoppel with an example.",
        "What is the difference between a will and a revocable living trust?",
        "When may an appellate court overturn a jury verdict?",
        "What makes a non-compete clause in an employment contract unenforceable?",
        "How does a court decide child custody after a divorce?",
    ),
    "finance": (
        "How do rising interest rates affect the price of existing bonds?",
        "What is the difference between a Roth IRA and a traditional IRA?",
        "Explain how to compute a company's free cash flow from its statements.",
        "Why do index funds usually beat actively managed funds after fees?",
        "What does a price-to-earnings ratio tell an investor about a stock?",
        "How does a company's debt-to-equity ratio affect its cost of capital?",
        "Explain dollar-cost averaging and when it reduces risk.",
        "What happens to a bank's balance sheet when a customer deposits cash?",
        "How is net present value used to compare two investment projects?",
        "What causes inflation, and how does a central bank respond to it?",
        "How are dividends taxed compared with long-term capital gains?",
        "What is working capital, and why do lenders watch it closely?",
    ),
    "code": (
        "Write a Python function that returns the n-th Fibonacci number iteratively.",
        "Why does my JavaScript loop print the same index for every callback?",
        "Explain the difference between a process and a thread in an operating system.",
        "How do I reverse a singly linked list in place in C?",
        "What is the time complexity of quicksort, and when does it degrade?",
        "How can I fix a Python ImportError caused by a circular import?",
        "Write a SQL query that finds the second highest salary in a table.",
        "What does git rebase do differently from git merge?",
        "How does a hash map resolve collisions with open addressing?",
        "Explain dependency injection and why it makes code easier to test.",
        "Why does this Rust code fail to compile with a borrowed value error?",
        "How do I write a unit test that mocks an HTTP call in pytest?",
    ),
    "general": (
        "What is a good way to plan a three-day trip to a city I have never visited?",
        "Suggest a vegetarian dinner I can cook in thirty minutes.",
        "Why is the sky blue during the day and red at sunset?",
        "Give me tips for keeping houseplants alive through the winter.",
        "What are some good habits for getting better sleep?",
        "Summarize the plot of a classic adventure novel in three sentences.",
        "How do I start learning to play the guitar as an adult?",
        "What should I pack for a weekend camping trip in the mountains?",
        "Write a short friendly message inviting neighbours to a garden party.",
        "Why do cats purr, and what does it usually mean?",
        "What are fun indoor activities for children on a rainy day?",
        "How do I politely decline an invitation to a wedding?",
    ),
}

#: The domains of :data:`PROMPTS`, in a fixed order.
DOMAINS: tuple[str, ...] = tuple(PROMPTS)


def parse_weights(text: str) -> dict[str, float]:
    """Weights from ``"domain=weight,..."``; unnamed domains weigh 0.

    An empty text gives every domain weight 1. Raises ValueError on an
    unknown domain, a bad or negative number, or weights that sum to 0.
    """
    if not text.strip():
        return dict.fromkeys(DOMAINS, 1.0)
    weights = dict.fromkeys(DOMAINS, 0.0)
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in PROMPTS:
            raise ValueError(f"expected domain=weight with a domain of {list(DOMAINS)}: {item!r}")
        try:
            weight = float(value)
        except ValueError as err:
            raise ValueError(f"weight of {name!r} is not a number: {value!r}") from err
        if weight < 0 or weight != weight:
            raise ValueError(f"weight of {name!r} must be >= 0, got {value!r}")
        weights[name] = weight
    if sum(weights.values()) <= 0:
        raise ValueError(f"domain weights sum to 0: {text!r}")
    return weights


@dataclass(frozen=True)
class PromptMix:
    """Draws ``(domain, prompt)``: a domain by weight, then one of its prompts uniformly."""

    weights: Mapping[str, float]

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(PROMPTS)
        if unknown or sum(self.weights.values()) <= 0:
            raise ValueError(f"bad domain weights {dict(self.weights)}")

    @classmethod
    def parse(cls, text: str) -> PromptMix:
        """The mix of :func:`parse_weights` ``(text)``."""
        return cls(parse_weights(text))

    def pick(self, rng: random.Random) -> tuple[str, str]:
        """One ``(domain, prompt)``."""
        names = [d for d in DOMAINS if self.weights.get(d, 0) > 0]
        domain = rng.choices(names, weights=[self.weights[d] for d in names])[0]
        return domain, rng.choice(PROMPTS[domain])


@dataclass
class Conversation:
    """One user's chat of up to ``turns`` turns; then the next one starts afresh.

    :meth:`ask` gives the messages of the next request: the earlier turns,
    each with the answer it got, then the new prompt. A chat stays in the
    domain of its first prompt. With ``turns`` 1 every request is a new chat.
    """

    mix: PromptMix
    turns: int = 1
    domain: str = ""
    turn: int = 0  # turns asked in this chat
    messages: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.turns < 1:
            raise ValueError(f"turns must be at least 1, got {self.turns}")

    def ask(self, rng: random.Random) -> tuple[str, list[dict[str, Any]]]:
        """``(domain, messages)`` of the next turn, a new chat after ``turns`` turns."""
        if self.turn >= self.turns or not self.domain:
            self.domain, prompt = self.mix.pick(rng)
            self.turn, self.messages = 0, []
        else:
            prompt = rng.choice(PROMPTS[self.domain])  # later turns stay on its topic
        self.turn += 1
        self.messages.append({"role": "user", "content": prompt})
        return self.domain, list(self.messages)

    def answered(self, text: str) -> None:
        """The last turn's answer, which the next turn carries."""
        self.messages.append({"role": "assistant", "content": text})

    def failed(self) -> None:
        """The last turn got no answer: the next request starts a new chat."""
        self.turn = self.turns
