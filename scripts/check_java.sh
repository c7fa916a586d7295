#!/usr/bin/env bash
# Stop early, with install advice, when Java 17+ is missing: Spark needs it and
# every later error would be far less clear.
set -u
advice='Install Java 17, for example:
  Debian/Ubuntu:  sudo apt-get install -y openjdk-17-jre-headless
  macOS:          brew install openjdk@17
or point JAVA_HOME at an existing Java 17 installation.'

java_bin=java
if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
  java_bin="$JAVA_HOME/bin/java"
fi
if ! command -v "$java_bin" >/dev/null 2>&1; then
  echo "error: Java was not found on PATH (Spark needs Java 17 or newer)." >&2
  echo "$advice" >&2
  exit 1
fi
version_line=$("$java_bin" -version 2>&1 | head -n 1)
# 'openjdk version "17.0.15"' or the old style 'java version "1.8.0_392"'.
version=$(printf '%s' "$version_line" | sed -E 's/.*version "([^"]+)".*/\1/')
major=${version%%.*}
if [ "$major" = "1" ]; then
  major=$(printf '%s' "$version" | cut -d. -f2)
fi
case "$major" in
  ''|*[!0-9]*)
    echo "error: could not read the Java version from: $version_line" >&2
    echo "$advice" >&2
    exit 1 ;;
esac
if [ "$major" -lt 17 ]; then
  echo "error: Java $version found, but Spark 4 needs Java 17 or newer." >&2
  echo "$advice" >&2
  exit 1
fi
