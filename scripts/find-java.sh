# Sourced by ./lathe and .ci/run: exports JAVA_HOME pointing at a JDK 25 or newer.
# Order: $JAVA_HOME if it is new enough, then the newest JDK >= 25 under /usr/lib/jvm.
_lathe_java_major() {
  "$1/bin/java" -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print v[1]; exit}'
}
_lathe_find_java() {
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
    m=$(_lathe_java_major "$JAVA_HOME")
    if [ "${m:-0}" -ge 25 ] 2>/dev/null; then return 0; fi
  fi
  best=""; bestm=0
  for d in /usr/lib/jvm/*; do
    [ -x "$d/bin/javac" ] || continue
    m=$(_lathe_java_major "$d")
    if [ "${m:-0}" -ge 25 ] 2>/dev/null && [ "$m" -gt "$bestm" ]; then best=$d; bestm=$m; fi
  done
  if [ -z "$best" ]; then
    echo "lathe: no JDK 25 or newer found (set JAVA_HOME or install one under /usr/lib/jvm)" >&2
    return 2
  fi
  export JAVA_HOME="$best"
}
_lathe_find_java || exit 2
export PATH="$JAVA_HOME/bin:$PATH"
