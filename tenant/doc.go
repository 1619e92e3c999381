// Package tenant is the one vocabulary of tenancy that the write path, the
// read path and the TSDBs share: the HTTP headers a tenant arrives in
// (FromHeader), the gRPC metadata key that scopes a Store API request
// (MetadataKey), the external label that names a tenant's data (Label), the
// tenant of requests without a header (Default), and which ids are allowed
// (Validate, ErrInvalid: ASCII letters, digits and ! - _ . * ' ( ), at most
// MaxLength bytes, as Mimir and Cortex).
//
// It holds names and rules only, no state, and imports nothing of Atoll: ingest, querier and tsdbshard
// import it so that a change to what a tenant is happens in one place.
package tenant
