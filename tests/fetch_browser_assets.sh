#!/usr/bin/env bash
# The three scripts the book's pages load from CDNs (MathJax, require.js, the Jupyter
# widgets HTML manager), fetched once from the npm registry for the browser test, which
# serves them locally in place of the CDN (test machines may have no other network).
# Usage: bash tests/fetch_browser_assets.sh   (needs npm; writes tests/.browser-assets/)
set -euo pipefail
dest="$(cd "$(dirname "$0")" && pwd)/.browser-assets"
mkdir -p "$dest"
cd "$dest"
fetch() {  # npm package spec, folder name
  [ -d "$2" ] && return 0
  tarball=$(npm pack --silent "$1")
  mkdir -p "$2" && tar xzf "$tarball" -C "$2" --strip-components=1 && rm "$tarball"
}
fetch mathjax@3.2.2 mathjax
fetch requirejs@2.3.4 requirejs
fetch @jupyter-widgets/html-manager@1.0.15 html-manager
echo "browser assets in $dest"
