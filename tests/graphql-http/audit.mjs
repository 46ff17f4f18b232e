// graphql-http's GraphQL-over-HTTP audit against one endpoint, every request carrying the
// given bearer token (the BFFs' /graphql is behind JWT auth).
//
//   node audit.mjs URL TOKEN
//
// Prints one line per audit ("ok", "warn" or "error", its id and name, and why when it did
// not pass), then a last line of JSON counts: {"total":61,"ok":..,"warn":..,"error":..}.
// The exit status is 0 whatever the results: tests/e2e/graphql_http.rs judges them.
import { auditServer } from 'graphql-http';

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  console.error('usage: node audit.mjs URL TOKEN');
  process.exit(2);
}

const withToken = (input, init = {}) => {
  const headers = new Headers(init.headers || {});
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};

const results = await auditServer({ url, fetchFn: withToken });
const counts = { total: results.length, ok: 0, warn: 0, error: 0 };
for (const result of results) {
  counts[result.status] += 1;
  const why = result.status === 'ok' ? '' : ` -- ${result.reason}`;
  console.log(`${result.status} ${result.id} ${result.name}${why}`);
}
console.log(JSON.stringify(counts));
