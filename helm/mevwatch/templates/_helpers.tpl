{{- define "mevwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mevwatch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "mevwatch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "mevwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "mevwatch.selector" -}}
app.kubernetes.io/name: {{ include "mevwatch.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "mevwatch.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "mevwatch.secretName" -}}
{{- if .Values.secrets.create -}}{{ include "mevwatch.fullname" . }}{{- else -}}{{ required "secrets.existingSecret is required when secrets.create is false" .Values.secrets.existingSecret }}{{- end -}}
{{- end -}}

{{- define "mevwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ default (include "mevwatch.fullname" .) .Values.serviceAccount.name }}{{- else -}}{{ default "default" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}

{{/* The pod spec shared by every role: . = dict root role args resources extraEnv gpu nodeSelector tolerations affinity dataVolume */}}
{{- define "mevwatch.podSpec" -}}
{{- $root := .root -}}
serviceAccountName: {{ include "mevwatch.serviceAccountName" $root }}
automountServiceAccountToken: false
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
securityContext: {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with .nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: mevwatch
    image: {{ include "mevwatch.image" $root }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    args: {{- toYaml .args | nindent 6 }}
    env:
      - name: MEVWATCH_LOG_FORMAT
        value: json
      {{- if or $root.Values.secrets.clickhousePassword (not $root.Values.secrets.create) }}
      - name: MEVWATCH_CLICKHOUSE__PASSWORD_FILE
        value: /etc/mevwatch/secrets/clickhouse-password
      {{- end }}
      {{- with .extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    ports:
      - name: http
        containerPort: {{ $root.Values.service.port }}
        protocol: TCP
    livenessProbe:
      httpGet: {path: /healthz, port: http}
      initialDelaySeconds: {{ $root.Values.probes.liveness.initialDelaySeconds }}
      periodSeconds: {{ $root.Values.probes.liveness.periodSeconds }}
      failureThreshold: {{ $root.Values.probes.liveness.failureThreshold }}
    readinessProbe:
      httpGet: {path: /readyz, port: http}
      initialDelaySeconds: {{ $root.Values.probes.readiness.initialDelaySeconds }}
      periodSeconds: {{ $root.Values.probes.readiness.periodSeconds }}
      failureThreshold: {{ $root.Values.probes.readiness.failureThreshold }}
    resources:
      {{- $res := deepCopy .resources }}
      {{- if and .gpu .gpu.enabled }}
      {{- $limits := default (dict) $res.limits }}
      {{- $_ := set $limits "nvidia.com/gpu" .gpu.count }}
      {{- $_ := set $res "limits" $limits }}
      {{- end }}
      {{- toYaml $res | nindent 6 }}
    securityContext: {{- toYaml $root.Values.securityContext | nindent 6 }}
    volumeMounts:
      - {name: config, mountPath: /etc/mevwatch/mevwatch.yaml, subPath: mevwatch.yaml, readOnly: true}
      - {name: secrets, mountPath: /etc/mevwatch/secrets, readOnly: true}
      - {name: data, mountPath: /var/lib/mevwatch}
      - {name: tmp, mountPath: /tmp}
volumes:
  - name: config
    configMap:
      name: {{ include "mevwatch.fullname" $root }}
  - name: secrets
    secret:
      secretName: {{ include "mevwatch.secretName" $root }}
      defaultMode: 0400
  - name: data
    {{- if .dataVolume }}
    {{- toYaml .dataVolume | nindent 4 }}
    {{- else }}
    emptyDir: {}
    {{- end }}
  - name: tmp
    emptyDir: {}
{{- end -}}
