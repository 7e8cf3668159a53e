# Shared by scripts/dev and scripts/test: make sure uv is there (the only tool we install outside the venv).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.local/bin:$PATH"  # where a previous `pip install --user uv` put it
if ! command -v uv >/dev/null 2>&1; then
  echo "installing uv (Python package manager)…" >&2
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
fi
