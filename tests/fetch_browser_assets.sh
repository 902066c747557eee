#!/usr/bin/env bash
# The scripts the book's pages load from CDNs (MathJax, require.js, the Jupyter widgets
# HTML manager, and onnxruntime-web for the live explorers), fetched once from the npm
# registry for the browser test, which serves them locally in place of the CDN (test
# machines may have no other network).
# Usage: bash tests/fetch_browser_assets.sh   (needs npm; writes tests/.browser-assets/)
set -euo pipefail
dest="$(cd "$(dirname "$0")" && pwd)/.browser-assets"
mkdir -p "$dest"
cd "$dest"
fetch() {  # npm package spec, folder name, optionally only these paths inside the package
  [ -d "$2" ] && return 0
  local tarball folder=$2
  tarball=$(npm pack --silent "$1")
  shift 2
  rm -rf "$folder.part" && mkdir "$folder.part"
  tar xzf "$tarball" -C "$folder.part" --strip-components=1 "${@/#/package/}"
  rm "$tarball" && mv "$folder.part" "$folder"  # a folder that exists is complete
}
fetch mathjax@3.2.2 mathjax
fetch requirejs@2.3.4 requirejs
fetch @jupyter-widgets/html-manager@1.0.15 html-manager
# The version named by gpt_live_ort in _config.yml; only the files the pages load (the
# package holds 140 MB of builds for other back ends).
fetch onnxruntime-web@1.30.0 onnxruntime-web package.json dist/ort.wasm.min.mjs \
  dist/ort-wasm-simd-threaded.mjs dist/ort-wasm-simd-threaded.wasm
echo "browser assets in $dest"
