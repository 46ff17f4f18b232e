#!/bin/sh
# Re-fetches the IDE's vendored files from npm into vendor/: GraphiQL's minified UMD build
# and the React 18 UMD builds it runs on, each with its LICENSE. Run from this directory
# (src/graphql/ide/), then `cargo test -p e2e -- ide` and update the versions in README.md
# and ide.rs's doc comment. GraphiQL 3.9.0 is the first 3.x whose graphiql.min.js really is
# minified (3.0-3.8 ship webpack development builds of ~3.5 MB under that name); 4.x and
# later need React 19 and ship ES modules only.
set -eu
GRAPHIQL=3.9.0
REACT=18.3.1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "graphiql@$GRAPHIQL" "react@$REACT" "react-dom@$REACT" >/dev/null)
for package in "graphiql-$GRAPHIQL" "react-$REACT" "react-dom-$REACT"; do
    mkdir -p "$work/$package"
    tar xzf "$work/$package.tgz" -C "$work/$package"
done
mkdir -p vendor
cp "$work/graphiql-$GRAPHIQL/package/graphiql.min.js" vendor/graphiql.min.js
cp "$work/graphiql-$GRAPHIQL/package/graphiql.min.css" vendor/graphiql.min.css
cp "$work/graphiql-$GRAPHIQL/package/LICENSE" vendor/LICENSE.graphiql
cp "$work/react-$REACT/package/umd/react.production.min.js" vendor/react.production.min.js
cp "$work/react-$REACT/package/LICENSE" vendor/LICENSE.react
cp "$work/react-dom-$REACT/package/umd/react-dom.production.min.js" vendor/react-dom.production.min.js
cp "$work/react-dom-$REACT/package/LICENSE" vendor/LICENSE.react-dom
# The bundles end with a sourceMappingURL comment for maps that are not shipped: drop it so
# browser tools do not ask for a missing file.
for f in vendor/*.js vendor/*.css; do
    sed -i '/^\/[/*][#@] sourceMappingURL=/d' "$f"
done
ls -l vendor/
