{{/*
Object names are fixed (alertbridge-manager, alertbridge-api, …) and equal
to config/'s: the CRDs, ClusterRoles and admission policies are
cluster-wide, so there is one alertbridge per cluster, whatever the release
is called.
*/}}

{{- define "alertbridge.labels" -}}
app.kubernetes.io/name: alertbridge
{{ include "alertbridge.releaseLabels" . }}
{{- end }}

{{- /* The labels of the HTTP API's objects, as config/manager's. */}}
{{- define "alertbridge.apiLabels" -}}
app.kubernetes.io/name: alertbridge-api
app.kubernetes.io/part-of: alertbridge
{{ include "alertbridge.releaseLabels" . }}
{{- end }}

{{- define "alertbridge.releaseLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "alertbridge.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "alertbridge.validate" -}}
{{- if not (has .Values.mirror.mode (list "required" "optional" "off")) }}
{{- fail (printf "mirror.mode: %q is not one of required, optional, off" .Values.mirror.mode) }}
{{- end }}
{{- if not (has .Values.tls.mode (list "self-managed" "cert-manager")) }}
{{- fail (printf "tls.mode: %q is not one of self-managed, cert-manager" .Values.tls.mode) }}
{{- end }}
{{- end }}

{{/*
alertbridge.fromConfig renders one object the chart copies from config/
(files/...): in the release namespace, with config/'s labels, the chart's
and extra ones. Call with (list $ "files/PATH" EXTRA-LABELS).
*/}}
{{- define "alertbridge.fromConfig" -}}
{{- $root := index . 0 -}}
{{- $obj := $root.Files.Get (index . 1) | fromYaml -}}
{{- $labels := merge (dict) (index . 2) (include "alertbridge.labels" $root | fromYaml) ($obj.metadata.labels | default dict) -}}
{{- $_ := set $obj.metadata "namespace" $root.Release.Namespace -}}
{{- $_ := set $obj.metadata "labels" $labels -}}
{{- toYaml $obj -}}
{{- end }}
