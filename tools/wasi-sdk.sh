#!/usr/bin/env bash
# Lays out a folder shaped like the WASI SDK, made of symlinks to Debian's clang-19,
# llvm-19 and wasi-libc, and prints its path. rquickjs-sys compiles QuickJS's C code
# with "$WASI_SDK/bin/clang"; without WASI_SDK it downloads the SDK, which offline
# machines cannot.
set -euo pipefail
out=${1:-target/wasi-sdk}
need=()
command -v clang-19 >/dev/null || need+=(clang-19)
command -v wasm-ld-19 >/dev/null || need+=(lld-19)
command -v llvm-ar-19 >/dev/null || need+=(llvm-19)
[ -e /usr/lib/llvm-19/lib/clang/19/lib/wasi ] || need+=(libclang-rt-19-dev-wasm32)
[ -d /usr/include/wasm32-wasi ] || need+=(wasi-libc)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq >&2
  $sudo_ apt-get install -y -qq "${need[@]}" >&2
fi
mkdir -p "$out/bin" "$out/share/wasi-sysroot/lib"
ln -sfn "$(command -v clang-19)" "$out/bin/clang"
ln -sfn "$(command -v llvm-ar-19)" "$out/bin/ar"
ln -sfn "$(command -v llvm-ar-19)" "$out/bin/llvm-ar"
ln -sfn "$(command -v wasm-ld-19)" "$out/bin/wasm-ld"
ln -sfn /usr/include/wasm32-wasi "$out/share/wasi-sysroot/include"
ln -sfn /usr/lib/wasm32-wasi "$out/share/wasi-sysroot/lib/wasm32-wasi"
ln -sfn /usr/lib/wasm32-wasi "$out/share/wasi-sysroot/lib/wasm32-wasip2"
cd "$out" && pwd
