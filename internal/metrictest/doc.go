// Package metrictest reads single values out of a Prometheus registry in
// tests: what a component exported is checked the way a scrape would see
// it, without reaching into the component's collectors.
//
// Only tests import it.
package metrictest
