// GraphiQL on this BFF's own endpoint: the page is served at `<base>/ide`, the endpoint is
// `<base>/graphql`, so the IDE also works behind a proxy that mounts the BFF under a prefix.
// Headers typed into the Headers tab (the caller's `Authorization`) go with every request,
// the schema fetch included, and are kept in this browser's local storage.
(function () {
  'use strict';
  var endpoint = new URL('graphql', window.location.href).href;
  var fetcher = GraphiQL.createFetcher({ url: endpoint });
  var defaultQuery =
    '# This BFF runs in development mode: introspection, suggestions and this IDE are on.\n' +
    '# Its /graphql wants a token: put it in the Headers tab below, then re-fetch the\n' +
    '# schema (the circular arrows on the left) for the docs and autocompletion.\n' +
    '\n' +
    '{ __typename }\n';
  var defaultHeaders = '{\n  "Authorization": "Bearer <token>"\n}';
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      defaultHeaders: defaultHeaders,
      defaultEditorToolsVisibility: 'headers',
      shouldPersistHeaders: true,
    })
  );
})();
