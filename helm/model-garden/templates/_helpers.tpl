{{/*
Names and labels. cluster/k8s/_names.py mirrors these helpers: `garden k8s
render` must name and label the RayService exactly as this chart does.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "model-garden.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The RayService's name and every other object's prefix. */}}
{{- define "model-garden.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "model-garden.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* What Services and the PodDisruptionBudget select the garden's Ray pods by. */}}
{{- define "model-garden.selectorLabels" -}}
app.kubernetes.io/name: {{ include "model-garden.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "model-garden.labels" -}}
helm.sh/chart: {{ include "model-garden.chart" . }}
{{ include "model-garden.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: model-garden
{{- end }}

{{/* Port of the Serve HTTP proxy: the garden's router.port. */}}
{{- define "model-garden.servePort" -}}
{{- .Values.router.port | default 8000 | int }}
{{- end }}

{{/* "1" when router.ingress is haproxy (the default): Ray Serve's throughput-optimized mode. */}}
{{- define "model-garden.serveOptimized" -}}
{{- if eq (.Values.router.ingress | default "haproxy") "haproxy" }}1{{ else }}0{{ end }}
{{- end }}

{{/* Port of Ray's Prometheus endpoint on every pod: the garden's telemetry.metrics_port. */}}
{{- define "model-garden.metricsPort" -}}
{{- .Values.telemetry.metrics_port | default 8080 | int }}
{{- end }}

{{/* The Serve service KubeRay creates for a RayService (<name>-serve-svc). */}}
{{- define "model-garden.serveService" -}}
{{- printf "%s-serve-svc" (include "model-garden.fullname" .) }}
{{- end }}

{{/* The service account every Ray pod runs as. */}}
{{- define "model-garden.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- .Values.serviceAccount.name | default (include "model-garden.fullname" .) }}
{{- else }}
{{- .Values.serviceAccount.name | default "default" }}
{{- end }}
{{- end }}

{{/*
The Ray custom resources a pod offers: its rayStartParams.resources, KubeRay's
quoted JSON string ('"{\"garden_router\": 8}"'), as a dict (empty when unset).
*/}}
{{- define "model-garden.offeredResources" -}}
{{- $raw := (.rayStartParams | default dict).resources | default "" }}
{{- $json := $raw | trimPrefix "\"" | trimSuffix "\"" | replace "\\\"" "\"" }}
{{- if $json }}{{ $json }}{{ else }}{}{{ end }}
{{- end }}
