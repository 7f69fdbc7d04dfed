#!/usr/bin/env bash
# Runs in the images' build stage after docker/build-binary.sh: lays out the files the images
# ship and makes the documents a compliance team verifies.
#
#   /image/runtime/   bin/pushgateway (from build-binary.sh), etc/passwd, etc/group
#   /image/common/    what every variant carries:
#     data/                                       65532:0, 0770 (any UID in group 0 may write)
#     etc/ssl/certs/ca-certificates.crt           Debian's CA bundle (ca-certificates)
#     usr/share/doc/pushgateway/sbom.cdx.json     CycloneDX 1.5 SBOM
#     usr/share/doc/pushgateway/sbom.spdx.json    SPDX 2.3 SBOM, the same components
#     usr/share/doc/pushgateway/provenance.json   in-toto statement, SLSA provenance v1
#     usr/share/doc/pushgateway/fips.json         with --fips: the FIPS attestation
#
# Usage: image-outputs.sh [--fips]     (in /src, with the cargo registry as a cache mount)
#
# Reads the build arguments from the environment (VERSION, REVISION, BRANCH, SOURCE_DATE_EPOCH,
# SOURCE_URL, LICENSES, RUST_IMAGE, RUST_IMAGE_DIGEST, CARGO_CYCLONEDX_VERSION), /out/build.json
# and, with --fips, /out/fips-evidence.json and /usr/local/share/pushgateway/fips-module.json.
set -euo pipefail

fips=false
dockerfile=Dockerfile
if [ "${1:-}" = --fips ]; then
    fips=true
    dockerfile=Dockerfile.fips
fi

common=/image/common
docs=$common/usr/share/doc/pushgateway
binary=/image/runtime/bin/pushgateway
mkdir -p "$common/data" "$common/etc/ssl/certs" "$docs" /image/runtime/etc

sha256() { sha256sum "$1" | cut -d' ' -f1; }
now() { date -u +%Y-%m-%dT%H:%M:%SZ; }
binary_sha=$(sha256 "$binary")
target=$(jq -r .target /out/build.json)
# In a subshell: os-release sets VERSION, which is also a build argument.
distro=$(. /etc/os-release && echo "$ID-$VERSION_ID")

# A Debian package as a package URL, with its version as installed here.
deb_purl() {
    dpkg-query -W -f='${Package} ${Version} ${Architecture}\n' "$1" |
        jq -R -r --arg distro "$distro" \
            'split(" ") | "pkg:deb/debian/\(.[0])@\(.[1] | @uri)?arch=\(.[2])&distro=\($distro)"'
}

# --- accounts and /data ------------------------------------------------------------------------

# Only nonroot: an image run with another numeric UID (--user 65534, OpenShift's random UIDs)
# then gets group 0, which owns /data.
printf 'nonroot:x:65532:65532:nonroot:/data:/sbin/nologin\n' >/image/runtime/etc/passwd
printf 'nonroot:x:65532:\n' >/image/runtime/etc/group
chmod 0644 /image/runtime/etc/passwd /image/runtime/etc/group
chown 65532:0 "$common/data"
chmod 0770 "$common/data"

# --- Debian's CA bundle -----------------------------------------------------------------------

# Made as update-ca-certificates makes it from the package's certificates, but without the
# certificates this build machine added locally (/usr/local/share/ca-certificates), so that it
# is Debian's bundle and nothing else.
bundle=$common/etc/ssl/certs/ca-certificates.crt
: >"$bundle"
grep -v '^[#!]' /etc/ca-certificates.conf | while read -r cert; do
    [ -z "$cert" ] || sed -e '$a\' "/usr/share/ca-certificates/$cert" >>"$bundle"
done
chmod 0644 "$bundle"
certificates=$(grep -c 'BEGIN CERTIFICATE' "$bundle")
[ "$certificates" -ge 100 ] || {
    echo "the CA bundle has only $certificates certificates" >&2
    exit 1
}
ca_version=$(dpkg-query -W -f='${Version}' ca-certificates)
ca_purl=$(deb_purl ca-certificates)

# --- SBOMs --------------------------------------------------------------------------------------

features=()
[ "$fips" = false ] || features=(--features fips)
/opt/cargo-cyclonedx/bin/cargo-cyclonedx cyclonedx --format json --spec-version 1.5 \
    --target "$target" --no-build-deps "${features[@]}" --override-filename sbom
rm -f bench/sbom.json
jq --arg binary_sha "$binary_sha" \
    --arg ca_purl "$ca_purl" \
    --arg ca_version "$ca_version" \
    --arg ca_sha "$(sha256 "$bundle")" \
    --arg certificates "$certificates" \
    '.metadata.component.hashes = [{alg: "SHA-256", content: $binary_sha}]
     | .components += [{
         type: "library",
         "bom-ref": $ca_purl,
         supplier: {name: "Debian"},
         name: "ca-certificates",
         version: $ca_version,
         description: "Debian'"'"'s bundle of the Mozilla CA certificates, at /etc/ssl/certs/ca-certificates.crt",
         licenses: [{expression: "MPL-2.0"}],
         hashes: [{alg: "SHA-256", content: $ca_sha}],
         purl: $ca_purl,
         properties: [
           {name: "pushgateway:path", value: "/etc/ssl/certs/ca-certificates.crt"},
           {name: "pushgateway:certificates", value: $certificates}
         ]
       }]' sbom.json >"$docs/sbom.cdx.json"
rm sbom.json

if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
    created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
else
    created=$(now)
fi
# The same components in SPDX 2.3: one package per component, purls and SHA-256 checksums
# carried over, CycloneDX's dependency graph as DEPENDS_ON relationships.
jq --arg created "$created" \
    --arg cyclonedx "$CARGO_CYCLONEDX_VERSION" \
    --arg namespace "https://spdx.org/spdxdocs/pushgateway-$VERSION-$binary_sha" \
    '. as $bom
     | ([$bom.metadata.component] + $bom.components) as $all
     | ($all | to_entries
        | map({key: .value["bom-ref"],
               value: (if .key == 0 then "SPDXRef-Package-pushgateway"
                       else "SPDXRef-Package-\(.key)" end)})
        | from_entries) as $ids
     | {
         spdxVersion: "SPDX-2.3",
         dataLicense: "CC0-1.0",
         SPDXID: "SPDXRef-DOCUMENT",
         name: "pushgateway-\($bom.metadata.component.version)",
         documentNamespace: $namespace,
         creationInfo: {
           created: $created,
           creators: ["Tool: cargo-cyclonedx-\($cyclonedx)", "Tool: pushgateway-docker-image-outputs"]
         },
         packages: [$all | to_entries[] | .key as $i | .value as $c | {
             name: $c.name,
             SPDXID: $ids[$c["bom-ref"]],
             versionInfo: $c.version,
             downloadLocation: (if ($c.purl // "" | startswith("pkg:cargo/"))
                                   and ($c.purl | contains("download_url=") | not)
                                then "https://crates.io/api/v1/crates/\($c.name)/\($c.version)/download"
                                else "NOASSERTION" end),
             filesAnalyzed: false,
             licenseConcluded: "NOASSERTION",
             licenseDeclared: ([$c.licenses[]? | .expression // .license.id // empty]
                               | if length == 0 then "NOASSERTION"
                                 elif length == 1 then .[0]
                                 else map("(\(.))") | join(" AND ") end),
             copyrightText: "NOASSERTION",
             primaryPackagePurpose: (if $i == 0 then "APPLICATION" else "LIBRARY" end)
           }
           + (if $c.supplier.name then {supplier: "Organization: \($c.supplier.name)"} else {} end)
           + ([$c.hashes[]? | select(.alg == "SHA-256") | {algorithm: "SHA256", checksumValue: .content}]
              | if length > 0 then {checksums: .} else {} end)
           + (if $c.purl then {externalRefs: [{referenceCategory: "PACKAGE-MANAGER",
                                               referenceType: "purl",
                                               referenceLocator: $c.purl}]} else {} end)
         ],
         relationships: (
           [{spdxElementId: "SPDXRef-DOCUMENT", relationshipType: "DESCRIBES",
             relatedSpdxElement: "SPDXRef-Package-pushgateway"}]
           + [$bom.components[] | select(.name == "ca-certificates")
              | {spdxElementId: "SPDXRef-DOCUMENT", relationshipType: "DESCRIBES",
                 relatedSpdxElement: $ids[.["bom-ref"]]}]
           + [$bom.dependencies[]? | .ref as $from | .dependsOn[]?
              | select($ids[$from] and $ids[.])
              | {spdxElementId: $ids[$from], relationshipType: "DEPENDS_ON",
                 relatedSpdxElement: $ids[.]}]
         )
       }' "$docs/sbom.cdx.json" >"$docs/sbom.spdx.json"

# --- provenance --------------------------------------------------------------------------------

# The sources the image was built from, hashed as a verifier can hash a checkout:
#   find Cargo.toml Cargo.lock build.rs src bench/Cargo.toml bench/src -type f -print0 \
#     | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum
source_files="Cargo.toml Cargo.lock build.rs src bench/Cargo.toml bench/src"
# shellcheck disable=SC2086
source_tree=$(find $source_files -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum |
    sha256sum | cut -d' ' -f1)
packages=(ca-certificates jq)
[ "$fips" = false ] || packages+=(golang-go cmake perl)
deb_dependencies=$(for package in "${packages[@]}"; do deb_purl "$package"; done |
    jq -R '{uri: ., annotations: {role: "build-stage Debian package"}}' | jq -s .)
build_args=$(jq -n \
    --arg VERSION "$VERSION" --arg REVISION "$REVISION" --arg BRANCH "$BRANCH" \
    --arg SOURCE_DATE_EPOCH "${SOURCE_DATE_EPOCH:-}" --arg SOURCE_URL "$SOURCE_URL" \
    --arg LICENSES "$LICENSES" --arg RUST_IMAGE "$RUST_IMAGE" \
    --arg RUST_IMAGE_DIGEST "$RUST_IMAGE_DIGEST" \
    '$ARGS.named | with_entries(select(.value != ""))')
jq -n \
    --arg dockerfile "$dockerfile" \
    --argjson build_args "$build_args" \
    --slurpfile build /out/build.json \
    --slurpfile sbom "$docs/sbom.cdx.json" \
    --argjson debs "$deb_dependencies" \
    --arg binary_sha "$binary_sha" \
    --arg bundle_sha "$(sha256 "$bundle")" \
    --arg source_tree "$source_tree" \
    --arg source_files "$source_files" \
    --arg cargo_lock "$(sha256 Cargo.lock)" \
    --arg cyclonedx "$CARGO_CYCLONEDX_VERSION" \
    --arg finished "$(now)" \
    '$build[0] as $b
     | ($build_args.RUST_IMAGE_DIGEST // "" | ltrimstr("sha256:")) as $builder_digest
     | {
         _type: "https://in-toto.io/Statement/v1",
         subject: [
           {name: "bin/pushgateway", digest: {sha256: $binary_sha}},
           {name: "etc/ssl/certs/ca-certificates.crt", digest: {sha256: $bundle_sha}}
         ],
         predicateType: "https://slsa.dev/provenance/v1",
         predicate: {
           buildDefinition: {
             buildType: "urn:pushgateway:docker-build:v1",
             externalParameters: {
               dockerfile: $dockerfile,
               buildArgs: $build_args,
               buildCommand: ("docker build -f " + $dockerfile
                 + ([$build_args | to_entries[] | " --build-arg \(.key)=\(.value | @sh)"] | join(""))
                 + " .")
             },
             internalParameters: {
               cargoCommand: $b.command,
               target: $b.target,
               postProcessing: $b.postProcessing,
               rustc: $b.rustc,
               cargo: $b.cargo
             },
             resolvedDependencies: (
               (if ($build_args.REVISION // "unknown") != "unknown" then
                  [{uri: "git+\($build_args.SOURCE_URL // "unknown")@\($build_args.REVISION)",
                    digest: {gitCommit: $build_args.REVISION},
                    annotations: {role: "source revision", branch: ($build_args.BRANCH // "unknown")}}]
                else [] end)
               + [{name: "source tree", uri: "file:///src",
                   digest: {sha256: $source_tree},
                   annotations: {role: "the files the build copied, hashed in sorted order",
                                 files: $source_files}},
                  {name: "Cargo.lock", uri: "file:///src/Cargo.lock", digest: {sha256: $cargo_lock}},
                  ({uri: "docker-image://\($build_args.RUST_IMAGE)",
                    annotations: {role: "builder image"}}
                   + (if $builder_digest != "" then {digest: {sha256: $builder_digest}} else {} end)),
                  {uri: "pkg:cargo/cargo-cyclonedx@\($cyclonedx)", annotations: {role: "SBOM generator"}}]
               + $debs
               + [$sbom[0].components[] | select(.purl | startswith("pkg:cargo/"))
                  | {uri: .purl}
                    + ([.hashes[]? | select(.alg == "SHA-256") | .content] | if length > 0 then {digest: {sha256: .[0]}} else {} end)]
             )
           },
           runDetails: {
             builder: {id: "urn:pushgateway:builder:docker-buildkit"},
             metadata: {startedOn: $b.startedOn, finishedOn: $finished}
           }
         }
       }' >"$docs/provenance.json"

# --- FIPS attestation ----------------------------------------------------------------------------

if [ "$fips" = true ]; then
    library_version=$(sed -n 's/.*(AWS-LC \(.*\))$/\1/p' <<<"$AWS_LC_FIPS_MODULE")
    jq -n \
        --slurpfile facts /usr/local/share/pushgateway/fips-module.json \
        --slurpfile evidence /out/fips-evidence.json \
        --slurpfile sbom "$docs/sbom.cdx.json" \
        --arg reported "$AWS_LC_FIPS_MODULE" \
        --arg version "$library_version" \
        --arg binary_sha "$binary_sha" \
        '($sbom[0].components[] | select(.name == "aws-lc-fips-sys") | .purl) as $package
         | {
             _type: "https://in-toto.io/Statement/v1",
             subject: [{name: "bin/pushgateway", digest: {sha256: $binary_sha}}],
             predicateType: "urn:pushgateway:fips:v1",
             predicate: {
               modules: [{name: $facts[0].name, version: $version} + $facts[0] + {
                 reportedAs: $reported,
                 package: $package,
                 linkage: "static",
                 evidence: $evidence[0]
               }]
             }
           }' >"$docs/fips.json"
fi

chmod 0644 "$docs"/*.json
ls -l "$docs"
