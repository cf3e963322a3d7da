{{/*
The pod template of the Ray head or of one worker group.
Context: dict "root" $ "role" ("ray-head"|"ray-worker") "place" <head or group values>.
*/}}
{{- define "model-garden.pod" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $place := .place }}
{{- $worker := eq .role "ray-worker" }}
{{- /* Only the router's pods get its API keys (values apiKeys; checked in rayservice.yaml). */}}
{{- $router := and $worker ($place.router | default false) }}
{{- $gpus := 0 }}
{{- if $worker }}{{ $gpus = int ($place.gpus | default 0) }}{{ end }}
{{- $requests := deepCopy (dig "resources" "requests" dict $place) }}
{{- $limits := deepCopy (dig "resources" "limits" dict $place) }}
{{- if gt $gpus 0 }}
{{- $_ := set $requests "nvidia.com/gpu" $gpus }}
{{- $_ := set $limits "nvidia.com/gpu" $gpus }}
{{- end -}}
metadata:
  labels:
    {{- include "model-garden.selectorLabels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .role }}
    {{- if $worker }}
    model-garden/group: {{ $place.name }}
    {{- end }}
  {{- with $v.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "model-garden.serviceAccountName" $root }}
  {{- /* The head's token is the in-tree autoscaler's (KubeRay binds its Role to this account). */}}
  automountServiceAccountToken: {{ and (not $worker) $v.rayAutoscaler.enabled }}
  {{- with $v.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- range . }}
    - name: {{ . }}
    {{- end }}
  {{- end }}
  {{- with $place.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $place.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $place.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if $worker }}
  {{- $spread := $place.topologySpreadConstraints | default $v.topologySpreadConstraints }}
  {{- with $spread }}
  topologySpreadConstraints:
    {{- range . }}
    {{- $c := deepCopy . }}
    {{- if not (hasKey $c "labelSelector") }}
    {{- $labels := include "model-garden.selectorLabels" $root | fromYaml }}
    {{- $_ := set $labels "model-garden/group" $place.name }}
    {{- $_ := set $c "labelSelector" (dict "matchLabels" $labels) }}
    {{- end }}
    - {{- toYaml $c | nindent 6 }}
    {{- end }}
  {{- end }}
  {{- end }}
  containers:
    - name: {{ .role }}
      image: "{{ $v.image.repository }}:{{ $v.image.tag | default $root.Chart.AppVersion }}"
      imagePullPolicy: {{ $v.image.pullPolicy }}
      {{- with $v.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      ports:
        {{- if not $worker }}
        - containerPort: 6379
          name: gcs-server
        - containerPort: 8265
          name: dashboard
        - containerPort: 10001
          name: client
        {{- end }}
        - containerPort: {{ include "model-garden.servePort" $root }}
          name: serve
        - containerPort: {{ include "model-garden.metricsPort" $root }}
          name: metrics
      resources:
        requests:
          {{- toYaml $requests | nindent 10 }}
        limits:
          {{- toYaml $limits | nindent 10 }}
      {{- /* Ray Serve reads these at process start, on every node (cluster.RouterSpec.serve_env). */}}
      env:
        - name: RAY_SERVE_THROUGHPUT_OPTIMIZED
          value: {{ include "model-garden.serveOptimized" $root | quote }}
        - name: RAY_SERVE_ENABLE_HA_PROXY
          value: {{ include "model-garden.serveOptimized" $root | quote }}
        {{- with $v.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- $keys := and $router $v.apiKeys.existingSecret }}
      {{- if or $keys $v.extraEnvFrom }}
      envFrom:
        {{- if $keys }}
        - secretRef:
            name: {{ $v.apiKeys.existingSecret }}
        {{- end }}
        {{- with $v.extraEnvFrom }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      volumeMounts:
        - name: exemplars
          mountPath: {{ $v.exemplars.mountPath }}
          readOnly: true
        {{- if and $router $v.apiKeys.keysSecret }}
        - name: api-keys
          mountPath: {{ dig "auth" "keys_dir" "" ($v.router | default dict) }}
          readOnly: true
        {{- end }}
        {{- if $worker }}
        {{- /* vLLM's workers share tensors through /dev/shm; the runtime's 64 MiB is too small. */}}
        - name: dshm
          mountPath: /dev/shm
        {{- end }}
        {{- with $v.volumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    {{- /* Optional: a RayService applied without the chart still starts, with the bundled exemplar sets. */}}
    - name: exemplars
      configMap:
        name: {{ include "model-garden.fullname" $root }}-exemplars
        optional: true
    {{- if $worker }}
    - name: dshm
      emptyDir:
        medium: Memory
    {{- end }}
    {{- if and $router $v.apiKeys.keysSecret }}
    - name: api-keys
      secret:
        secretName: {{ $v.apiKeys.keysSecret }}
    {{- end }}
    {{- with $v.volumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}
