// Package deploytest checks the operating artefacts under deploy/ against
// the real system, so none of them can drift from the binary they describe:
//
//   - the compose stack (deploy/docker-compose.yml) is brought up from images
//     built by `make docker-images`, written to and read from while each
//     kind of container in turn is killed (TestComposeSurvivesAnyOneContainer;
//     skipped only where Docker is absent);
//   - every Grafana dashboard expression (deploy/grafana) parses as PromQL and
//     names only metrics that a started Atoll process exposes;
//   - the alerting rules (deploy/rules) pass promtool's checks and their unit
//     tests, and every metric they name exists as well;
//   - the Kubernetes manifests (deploy/kubernetes) decode strictly into the
//     Kubernetes API types, and their ports, selectors, volumes, probes and
//     atoll flags refer to things that exist.
//
// The package holds tests only; it must not be imported. Tests start the
// real `atoll` binary and the real promtool, never stand-ins.
package deploytest
