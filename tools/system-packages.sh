#!/usr/bin/env bash
# Installs the Debian packages playfair needs, only those missing, so it is cheap to run
# again: PostgreSQL (the tests start a throwaway server from its binaries), ffmpeg (the
# worker transcodes with it), runuser (util-linux; to run PostgreSQL as the postgres
# user when we are root), Chromium (the browser tests), Node with npm (the Subsonic
# client tests run the npm subsonic-api client) and nginx (the front proxy's tests).
# Extra commands to provide can be named as arguments, each as COMMAND or
# COMMAND=PACKAGE (`make bench` asks for wrk).
set -euo pipefail

missing=()
for wanted in "$@"; do
  command=${wanted%%=*}
  package=${wanted#*=}
  command -v "$command" >/dev/null 2>&1 || [ -x "/usr/sbin/$command" ] || missing+=("$package")
done
pg_bin() { ls -d /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; }
pg_bin || missing+=(postgresql)
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
# Node and npm for the Subsonic client tests (the npm subsonic-api client, tests/node/).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# nginx: the tests run the site `playfair nginx-site` prints (signed audio links checked
# and served by nginx alone), and the streaming benchmark measures against it.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
# The browser tests drive Debian's Chromium with Playwright (never a downloaded browser).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "installing Debian packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "error: missing packages ${missing[*]}; install them as root (apt-get install ${missing[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
