package ingest

import (
	"errors"
	"net/http"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

// outcome classifies what happened to a series, or to a whole request. The
// order is the order of precedence when one answer must cover several
// series: a retryable failure outranks everything, because retrying is the
// only way the refused series get stored; among final refusals, malformed
// input outranks a conflict.
type outcome uint8

const (
	outcomeStored outcome = iota
	// Samples were out of order, duplicates with another value, or too old.
	outcomeConflict
	// The series or request is malformed.
	outcomeInvalid
	// A limit refused the request; the client should slow down.
	outcomeLimited
	// Something failed that may succeed later.
	outcomeInternal
	// Not enough replicas could be reached, or this receiver is starting or
	// stopping.
	outcomeUnavailable
)

func (o outcome) String() string {
	switch o {
	case outcomeStored:
		return "stored"
	case outcomeConflict:
		return "conflict"
	case outcomeInvalid:
		return "invalid"
	case outcomeLimited:
		return "limited"
	case outcomeInternal:
		return "internal"
	case outcomeUnavailable:
		return "unavailable"
	}
	return "unknown"
}

// httpStatus maps an outcome to the code that makes Prometheus do the right
// thing: 5xx and 429 are retried, 4xx dropped.
func (o outcome) httpStatus() int {
	switch o {
	case outcomeStored:
		return http.StatusNoContent
	case outcomeConflict:
		return http.StatusConflict
	case outcomeInvalid:
		return http.StatusBadRequest
	case outcomeLimited:
		return http.StatusTooManyRequests
	case outcomeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// errUnavailable is returned while the receiver cannot take writes: it is
// starting, stopping, or cannot reach enough replicas.
var errUnavailable = errors.New("unavailable")

// classifyAppendError sorts a TSDB append error into the outcome of the
// series it hit.
func classifyAppendError(err error) outcome {
	switch {
	case err == nil:
		return outcomeStored
	case errors.Is(err, storage.ErrOutOfOrderSample),
		errors.Is(err, storage.ErrOutOfBounds),
		errors.Is(err, storage.ErrTooOldSample),
		errors.Is(err, storage.ErrDuplicateSampleForTimestamp),
		errors.Is(err, storage.ErrOutOfOrderST):
		return outcomeConflict
	case errors.Is(err, tsdb.ErrInvalidSample),
		errors.Is(err, storage.ErrNativeHistogramsDisabled),
		errors.As(err, new(histogram.Error)):
		return outcomeInvalid
	}
	return outcomeInternal
}
