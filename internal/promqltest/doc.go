// Package promqltest evaluates PromQL in tests, in process, with
// Prometheus's own engine over any storage.Queryable: the reference answers
// that tests hold Atoll's against, and the answers of Atoll's Queryable
// itself. Only tests import it.
package promqltest
