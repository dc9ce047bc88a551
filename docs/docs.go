// Package docs embeds the API description, served at /openapi.yaml.
package docs

import _ "embed"

// OpenAPI is docs/openapi.yaml: every route of the service, described for
// OpenAPI 3.1. cmd/loyalty's tests fail when a registered route is missing
// from it or it describes a route that does not exist, and the HTTP suites
// check every answer they receive against it (internal/apicontract).
//
//go:embed openapi.yaml
var OpenAPI []byte
