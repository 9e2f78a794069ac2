#!/usr/bin/env bash
# generate.sh [OUT] regenerates the Go code of every .proto under proto/ into
# OUT (default: beside the .proto files), with the pinned plugins in
# .tools/bin. `make proto` runs it; a test runs it into a temporary folder and
# compares, so generated code never drifts from its .proto.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root}"
tools="$root/.tools/bin"
for p in protoc-gen-go protoc-gen-go-grpc; do
	[ -x "$tools/$p" ] || { echo "generate.sh: $tools/$p missing (run make proto-tools)" >&2; exit 1; }
done
command -v protoc >/dev/null || { echo "generate.sh: protoc missing (apt-get install protobuf-compiler)" >&2; exit 1; }
cd "$root"
mapfile -t protos < <(find proto -name '*.proto' | sort)
PATH="$tools:$PATH" protoc -I . -I /usr/include \
	--go_out="$out" --go_opt=module=github.com/vigil-cctv/vigil \
	--go-grpc_out="$out" --go-grpc_opt=module=github.com/vigil-cctv/vigil \
	"${protos[@]}"
