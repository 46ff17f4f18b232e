#!/bin/sh
# Re-fetches the API reference page's vendored files from npm into vendor/: Swagger UI's
# prebuilt bundle and stylesheet with their licence. Run from this directory
# (bff-partner/src/docs/), then `cargo test -p e2e -- docs` and update the version in
# README.md and docs.rs's doc comment.
set -eu
SWAGGER_UI=5.30.3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "swagger-ui-dist@$SWAGGER_UI" >/dev/null)
tar xzf "$work/swagger-ui-dist-$SWAGGER_UI.tgz" -C "$work"
mkdir -p vendor
cp "$work/package/swagger-ui-bundle.js" vendor/swagger-ui-bundle.js
cp "$work/package/swagger-ui.css" vendor/swagger-ui.css
cp "$work/package/LICENSE" vendor/LICENSE.swagger-ui
cp "$work/package/NOTICE" vendor/NOTICE.swagger-ui
cp "$work/package/swagger-ui-bundle.js.LICENSE.txt" vendor/LICENSE.swagger-ui-bundle-dependencies
# The bundles end with a sourceMappingURL comment for maps that are not shipped: drop it so
# browser tools do not ask for a missing file.
for f in vendor/*.js vendor/*.css; do
    sed -i '/^\/[/*][#@] sourceMappingURL=/d' "$f"
done
ls -l vendor/
