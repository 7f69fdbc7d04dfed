#!/usr/bin/env bash
# Runs in the images' build stage (Dockerfile, Dockerfile.fips): builds the gateway as a static
# binary, checks it, and leaves
#   /image/runtime/bin/pushgateway   the binary the images ship (stripped)
#   /out/build.json                  how it was built, for the provenance
#   /out/fips-evidence.json          with --fips: how this build proved that the binary
#                                    contains the FIPS module, for the FIPS attestation
#
# Usage: build-binary.sh [--fips]     (in /src, with the target directory as a cache mount)
#
# The build facts (VERSION, REVISION, BRANCH, SOURCE_DATE_EPOCH; with --fips also
# AWS_LC_FIPS_MODULE and AWS_LC_FIPS_CERTIFICATE) come from the Dockerfile's build arguments.
set -euo pipefail

fips=false
[ "${1:-}" != --fips ] || fips=true

crate_version=$(awk -F'"' '/^\[/ { p = ($0 == "[package]") } p && /^version *=/ { print $2; exit }' Cargo.toml)
if [ "$crate_version" != "$VERSION" ]; then
    echo "Cargo.toml says version $crate_version, the VERSION build argument says $VERSION: update the default in the Dockerfile or pass --build-arg VERSION=$crate_version" >&2
    exit 1
fi

target=$(rustc -vV | sed -n 's/^host: //p')
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# An explicit --target keeps +crt-static away from build scripts and proc macros. Whole-program
# optimisation makes the binary about 10% smaller for about the same build time. Packed
# relative relocations (DT_RELR; glibc 2.36 and binutils 2.38 or later) shrink the relocation
# table of the position-independent binary from about 300 KB to a few and keep ASLR; only the
# binary's link needs them, so they are passed to it alone and the dependencies stay cached.
export RUSTFLAGS='-C target-feature=+crt-static'
export CARGO_PROFILE_RELEASE_LTO=fat
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
set -- cargo rustc --release --locked -p pushgateway --bin pushgateway --target "$target"
[ "$fips" = false ] || set -- "$@" --features fips
set -- "$@" -- -C link-arg=-Wl,-z,pack-relative-relocs
PUSHGATEWAY_REVISION=$(printf '%.12s' "$REVISION") \
    PUSHGATEWAY_BRANCH="$BRANCH" \
    PUSHGATEWAY_BUILD_USER=docker \
    "$@"

binary="target/$target/release/pushgateway"
# Whole outputs, not pipes into `grep -q`: with pipefail an early exit would fail the pipe.
elf=$(readelf -lW "$binary"; readelf -dW "$binary")
if grep -qE 'INTERP|NEEDED' <<<"$elf"; then
    echo "$binary is not static" >&2
    exit 1
fi
mkdir -p /out /image/runtime/bin
strip --strip-all -o /image/runtime/bin/pushgateway "$binary"

jq -n \
    --arg command "RUSTFLAGS='$RUSTFLAGS' CARGO_PROFILE_RELEASE_LTO=$CARGO_PROFILE_RELEASE_LTO CARGO_PROFILE_RELEASE_CODEGEN_UNITS=$CARGO_PROFILE_RELEASE_CODEGEN_UNITS $*" \
    --arg target "$target" \
    --arg started "$started" \
    --arg rustc "$(rustc -vV)" \
    --arg cargo "$(cargo -V)" \
    --arg strip "strip --strip-all" \
    '{command: $command, target: $target, startedOn: $started, rustc: $rustc, cargo: $cargo, postProcessing: $strip}' \
    >/out/build.json

[ "$fips" = true ] || exit 0

# The proofs, each on the binary built here; the attestation records what each found.
shipped=/image/runtime/bin/pushgateway
report=$("$shipped" --version)
module=$(sed -n 's/^ *crypto module: *//p' <<<"$report")
certificate=$(sed -n 's/^ *certificate: *//p' <<<"$report")
if ! grep -q '^ *fips: *true$' <<<"$report" || [ "$module" != "$AWS_LC_FIPS_MODULE" ] ||
    [ "$certificate" != "$AWS_LC_FIPS_CERTIFICATE" ]; then
    echo "$shipped reports crypto module '$module', certificate '$certificate'; the Dockerfile says '$AWS_LC_FIPS_MODULE', '$AWS_LC_FIPS_CERTIFICATE'" >&2
    exit 1
fi

# The module checks its code against the hash recorded at build time before main runs and
# aborts on a mismatch. A copy with one byte of that hash flipped must refuse to start.
symbols=$(nm "$binary")
hash_symbol=$(awk '$3 == "BORINGSSL_bcm_text_hash" && !found { found = $1 } END { print found }' <<<"$symbols")
if [ -z "$hash_symbol" ]; then
    echo "$binary has no BORINGSSL_bcm_text_hash: not a static FIPS module build" >&2
    exit 1
fi
address=$((0x$hash_symbol))
offset=$(awk '$1 == "LOAD" { print $2, $3, $5 }' <<<"$elf" |
    while read -r file_offset virtual size; do
        if [ "$address" -ge $((virtual)) ] && [ "$address" -lt $((virtual + size)) ]; then
            echo $((file_offset + address - virtual))
        fi
    done)
cp "$binary" /tmp/tampered
byte=$(od -An -tu1 -j "$offset" -N1 /tmp/tampered | tr -d ' ')
printf "$(printf '\\%03o' $((byte ^ 255)))" | dd of=/tmp/tampered bs=1 seek="$offset" conv=notrunc status=none
if /tmp/tampered --version >/tmp/tampered.out 2>&1; then
    echo "a FIPS binary with a broken module hash started" >&2
    exit 1
fi
aborted=$(grep -m1 'FIPS integrity test failed' /tmp/tampered.out)
rm /tmp/tampered /tmp/tampered.out

fips_symbols=$(grep -c 'aws_lc_fips_' <<<"$symbols" || true)
other_symbols=$(grep 'aws_lc_0_' <<<"$symbols" | grep -vc 'aws_lc_fips_' || true)
if [ "$fips_symbols" -lt 1000 ] || [ "$other_symbols" -ne 0 ]; then
    echo "$binary has $fips_symbols FIPS module symbols and $other_symbols of the non-FIPS AWS-LC" >&2
    exit 1
fi

jq -n \
    --arg report "$report" \
    --arg crypto_module "$module" \
    --arg certificate "$certificate" \
    --arg symbol "BORINGSSL_bcm_text_hash" \
    --arg offset "$offset" \
    --arg aborted "$aborted" \
    --argjson fips_symbols "$fips_symbols" \
    --argjson other_symbols "$other_symbols" \
    --arg unstripped "$(sha256sum "$binary" | cut -d' ' -f1)" \
    '[
      {method: "self-report",
       description: "The shipped binary, run with --version: its FIPS self-tests and the integrity test of the module run before main; it reports FIPS mode and the module.",
       result: ("fips: true; crypto module: " + $crypto_module + "; certificate: " + $certificate)},
      {method: "integrity-test-tamper",
       description: ("A copy of the binary with one byte of the module'"'"'s recorded integrity hash (" + $symbol + ", file offset " + $offset + ") flipped was run: the module must refuse to start."),
       result: ("aborted before main: " + $aborted)},
      {method: "symbols",
       description: "Symbols of the unstripped binary: the FIPS module'"'"'s (prefix aws_lc_fips_) must be there, the non-FIPS AWS-LC build'"'"'s (prefix aws_lc_0_) must not.",
       result: (($fips_symbols | tostring) + " aws_lc_fips_ symbols, " + ($other_symbols | tostring) + " aws_lc_0_ symbols"),
       unstrippedSha256: $unstripped}
    ]' >/out/fips-evidence.json
echo "FIPS build: $module, $certificate; a copy with a broken module hash aborts before main"
