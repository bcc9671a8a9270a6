{{/*
Job skeleton shared by the map and training Jobs. Jobs are immutable, so their names carry the
release revision: every `helm upgrade` replaces the previous run with a fresh Job. The shared
volume is mounted as in the workers.
Usage: include "geoslide.job" (dict "root" . "component" "map" "job" .Values.mapJob "args" $args
       "volumes" "<yaml list or empty>" "mounts" "<yaml list or empty>")
*/}}
{{- define "geoslide.job" -}}
{{- $root := .root }}
{{- $job := .job }}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ include "geoslide.componentName" (list $root (printf "%s-r%d" .component (int $root.Release.Revision))) }}
  labels:
    {{- include "geoslide.labels" (list $root .component) | nindent 4 }}
  {{- with include "geoslide.secretEnvAnnotations" $root | trim }}
  {{- . | nindent 2 }}
  {{- end }}
spec:
  backoffLimit: {{ $job.backoffLimit }}
  {{- if $job.activeDeadlineSeconds }}
  activeDeadlineSeconds: {{ $job.activeDeadlineSeconds }}
  {{- end }}
  {{- if not (kindIs "invalid" $job.ttlSecondsAfterFinished) }}
  ttlSecondsAfterFinished: {{ $job.ttlSecondsAfterFinished }}
  {{- end }}
  template:
    metadata:
      labels:
        {{- include "geoslide.labels" (list $root .component) | nindent 8 }}
      {{- with $job.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      restartPolicy: Never
      {{- include "geoslide.podCommon" $root | nindent 6 }}
      {{- include "geoslide.waitForScheduler" $root | nindent 6 }}
      containers:
        - name: {{ .component }}
          image: {{ include "geoslide.image" (list $root dict) | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command:
            - geoslide
          args:
            {{- range .args }}
            - {{ . | quote }}
            {{- end }}
            {{- range $job.extraArgs }}
            - {{ . | quote }}
            {{- end }}
          env:
            {{- include "geoslide.baseEnv" $root | nindent 12 }}
            - name: DASK_SCHEDULER_ADDRESS
              value: {{ include "geoslide.schedulerAddress" $root | quote }}
            {{- with include "geoslide.objectStoreEnv" $root | trim }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with $job.env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- include "geoslide.containerSecurityContext" $root | nindent 10 }}
          resources:
            {{- toYaml $job.resources | nindent 12 }}
          volumeMounts:
            {{- include "geoslide.tmpMount" $root | nindent 12 }}
            {{- with include "geoslide.sharedMount" $root | trim }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with .mounts }}
            {{- . | nindent 12 }}
            {{- end }}
      volumes:
        {{- include "geoslide.tmpVolume" $root | nindent 8 }}
        {{- with include "geoslide.sharedVolume" $root | trim }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with .volumes }}
        {{- . | nindent 8 }}
        {{- end }}
      {{- with $job.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $job.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $job.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
