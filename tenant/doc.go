// Package tenant is the one vocabulary of tenancy that the write path, the
// read path and the TSDBs share: the HTTP headers a tenant arrives in
// (FromHeader), the external label that names a tenant's data (Label), the
// tenant of requests without a header (Default), and which ids are
// allowed (Validate, ErrInvalid).
//
// It holds names and rules only, no state, and imports nothing of Atoll: ingest, querier and tsdbshard
// import it so that a change to what a tenant is happens in one place.
package tenant
