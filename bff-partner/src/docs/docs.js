// The partner API's reference: Swagger UI over the document this gateway serves at
// /openapi.json (relative to /docs, so it works under any prefix). No validator badge (it
// would send the document to validator.swagger.io); "Try it out" calls this origin only, with
// the key the reader enters under "Authorize".
window.addEventListener("load", function () {
  window.reference = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#reference",
    validatorUrl: null,
    deepLinking: true,
    displayOperationId: true,
    defaultModelsExpandDepth: 0,
    tryItOutEnabled: false,
    persistAuthorization: false,
  });
});
