{{/*
serveConfigV2: one Serve application, Model Garden's builder, whose
args.config is exactly the garden config given as values (garden.yaml's keys).
*/}}

{{/* The garden config: the garden.yaml keys among the values, as given. */}}
{{- define "model-garden.gardenConfig" -}}
{{- $config := dict }}
{{- range $key := list "name" "data_dir" "models" "router" "autoscaling" "budget" "telemetry" }}
{{- if hasKey $.Values $key }}
{{- $_ := set $config $key (get $.Values $key) }}
{{- end }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{- define "model-garden.serveConfig" -}}
{{- $config := include "model-garden.gardenConfig" . | fromYaml }}
{{- $args := dict "config" $config "base_dir" .Values.exemplars.mountPath }}
{{- $app := dict "name" (.Values.name | default "garden") "route_prefix" "/" "import_path" "cluster.app:garden_app" "args" $args }}
{{- /* The proxy listens on the pod's address for KubeRay's Serve service; router.host is for local gardens. */}}
{{- $http := dict "host" "0.0.0.0" "port" (include "model-garden.servePort" . | int) }}
{{- $where := (.Values.router | default dict).proxy_location | default "EveryNode" }}
{{- $serve := dict "proxy_location" $where "http_options" $http "applications" (list $app) }}
{{- toYaml $serve }}
{{- end }}
