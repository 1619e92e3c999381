package frontend

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	jsoniter "github.com/json-iterator/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/jsonutil"
)

// series is one series of an answer. Float samples are kept as numbers;
// native histogram samples as the JSON the querier wrote, since the
// frontend only moves them around.
type series struct {
	lset   labels.Labels
	floats []promql.FPoint
	hists  []histPoint
}

// histPoint is one native histogram sample, in Prometheus's JSON.
type histPoint struct {
	T    int64
	JSON []byte
}

// answer is the data of a successful query answer and what came with it.
type answer struct {
	// resultType is matrix, vector, scalar or string.
	resultType string
	series     []*series
	// scalar holds a scalar or string result: its time and its value as
	// Prometheus wrote it.
	scalarT  int64
	scalarV  string
	warnings []string
	infos    []string
}

// apiError is an error answer in Prometheus's shape.
type apiError struct {
	status    int
	errorType string
	msg       string
}

func (e *apiError) Error() string { return e.errorType + ": " + e.msg }

var json = jsoniter.ConfigCompatibleWithStandardLibrary

// decodeAnswer reads a successful answer of the Prometheus API. Answers of
// another status come back as an *apiError.
func decodeAnswer(body []byte) (*answer, error) {
	it := json.BorrowIterator(body)
	defer json.ReturnIterator(it)
	a := &answer{}
	var status, errType, errMsg string
	var result []byte
	it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
		switch field {
		case "status":
			status = it.ReadString()
		case "errorType":
			errType = it.ReadString()
		case "error":
			errMsg = it.ReadString()
		case "warnings":
			a.warnings = readStrings(it, a.warnings)
		case "infos":
			a.infos = readStrings(it, a.infos)
		case "data":
			if it.WhatIsNext() != jsoniter.ObjectValue {
				it.Skip()
				return true
			}
			it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
				switch field {
				case "resultType":
					a.resultType = it.ReadString()
				case "result":
					result = it.SkipAndReturnBytes()
				default:
					it.Skip()
				}
				return true
			})
		default:
			it.Skip()
		}
		return true
	})
	if it.Error != nil && it.Error != io.EOF {
		return nil, fmt.Errorf("decode querier answer: %w", it.Error)
	}
	if status != "success" {
		return nil, &apiError{errorType: errType, msg: errMsg}
	}
	var err error
	switch a.resultType {
	case "matrix":
		a.series, err = decodeSeriesList(result, false)
	case "vector":
		a.series, err = decodeSeriesList(result, true)
	case "scalar", "string":
		a.scalarT, a.scalarV, err = decodeScalar(result)
	default:
		err = fmt.Errorf("unknown result type %q", a.resultType)
	}
	if err != nil {
		return nil, fmt.Errorf("decode querier answer: %w", err)
	}
	return a, nil
}

func readStrings(it *jsoniter.Iterator, into []string) []string {
	if it.WhatIsNext() != jsoniter.ArrayValue {
		it.Skip()
		return into
	}
	it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
		into = append(into, it.ReadString())
		return true
	})
	return into
}

// decodeSeriesList reads a matrix, or with one a vector, whose samples
// become one-point series.
func decodeSeriesList(raw []byte, vector bool) ([]*series, error) {
	it := json.BorrowIterator(raw)
	defer json.ReturnIterator(it)
	var out []*series
	var b labels.ScratchBuilder
	var err error
	it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
		s := &series{}
		it.ReadObjectCB(func(it *jsoniter.Iterator, field string) bool {
			switch field {
			case "metric":
				b.Reset()
				it.ReadMapCB(func(it *jsoniter.Iterator, name string) bool {
					b.Add(name, it.ReadString())
					return true
				})
				b.Sort()
				s.lset = b.Labels()
			case "values":
				err = readEach(it, s.readFloat)
			case "histograms":
				err = readEach(it, s.readHist)
			case "value":
				err = s.readFloat(it)
			case "histogram":
				err = s.readHist(it)
			default:
				it.Skip()
			}
			return err == nil
		})
		out = append(out, s)
		return err == nil
	})
	if err == nil && it.Error != nil && it.Error != io.EOF {
		err = it.Error
	}
	return out, err
}

// readEach calls read for every element of an array, up to the first
// error.
func readEach(it *jsoniter.Iterator, read func(*jsoniter.Iterator) error) error {
	var err error
	it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
		err = read(it)
		return err == nil
	})
	return err
}

// readSample reads [<time>, <value>], the value by readValue.
func readSample(it *jsoniter.Iterator, readValue func(*jsoniter.Iterator) error) (int64, error) {
	var t int64
	var err error
	i := 0
	it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
		switch i {
		case 0:
			t, err = parseTimestamp(string(it.ReadNumber()))
		case 1:
			err = readValue(it)
		default:
			it.Skip()
		}
		i++
		return err == nil
	})
	if err == nil && i != 2 {
		err = errors.New("sample is not [time, value]")
	}
	return t, err
}

// readFloat appends a [<time>, "<value>"] sample.
func (s *series) readFloat(it *jsoniter.Iterator) error {
	var v float64
	t, err := readSample(it, func(it *jsoniter.Iterator) (err error) {
		v, err = strconv.ParseFloat(it.ReadString(), 64)
		return err
	})
	s.floats = append(s.floats, promql.FPoint{T: t, F: v})
	return err
}

// readHist appends a [<time>, {<histogram>}] sample, the histogram kept as
// JSON.
func (s *series) readHist(it *jsoniter.Iterator) error {
	var h []byte
	t, err := readSample(it, func(it *jsoniter.Iterator) error {
		h = slices.Clone(it.SkipAndReturnBytes())
		return nil
	})
	s.hists = append(s.hists, histPoint{T: t, JSON: h})
	return err
}

func decodeScalar(raw []byte) (int64, string, error) {
	it := json.BorrowIterator(raw)
	defer json.ReturnIterator(it)
	var v string
	t, err := readSample(it, func(it *jsoniter.Iterator) error {
		v = it.ReadString()
		return nil
	})
	return t, v, err
}

// parseTimestamp reads a time in seconds as Prometheus writes it (integer
// seconds and up to three decimals) into milliseconds, exactly.
func parseTimestamp(s string) (int64, error) {
	intPart, frac, hasFrac := strings.Cut(s, ".")
	if strings.ContainsAny(s, "eE") || len(frac) > 3 {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, fmt.Errorf("bad timestamp %q", s)
		}
		return int64(math.Round(f * 1000)), nil
	}
	neg := strings.HasPrefix(intPart, "-")
	sec, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad timestamp %q", s)
	}
	ms := sec * 1000
	if hasFrac {
		frac += strings.Repeat("0", 3-len(frac))
		f, err := strconv.ParseInt(frac, 10, 64)
		if err != nil || f < 0 {
			return 0, fmt.Errorf("bad timestamp %q", s)
		}
		if neg {
			f = -f
		}
		ms += f
	}
	return ms, nil
}

// writeAnswer writes a success answer as Prometheus's API writes it.
func writeAnswer(w io.Writer, a *answer) error {
	st := jsoniter.NewStream(json, w, 64<<10)
	st.WriteObjectStart()
	st.WriteObjectField("status")
	st.WriteString("success")
	st.WriteMore()
	st.WriteObjectField("data")
	st.WriteObjectStart()
	st.WriteObjectField("resultType")
	st.WriteString(a.resultType)
	st.WriteMore()
	st.WriteObjectField("result")
	switch a.resultType {
	case "scalar", "string":
		st.WriteArrayStart()
		jsonutil.MarshalTimestamp(a.scalarT, st)
		st.WriteMore()
		st.WriteString(a.scalarV)
		st.WriteArrayEnd()
	case "vector":
		st.WriteArrayStart()
		for i, s := range a.series {
			if i > 0 {
				st.WriteMore()
			}
			writeSample(st, s)
			if st.Buffered() > 32<<10 {
				_ = st.Flush()
			}
		}
		st.WriteArrayEnd()
	default:
		st.WriteArrayStart()
		for i, s := range a.series {
			if i > 0 {
				st.WriteMore()
			}
			writeSeries(st, s)
			if st.Buffered() > 32<<10 {
				_ = st.Flush()
			}
		}
		st.WriteArrayEnd()
	}
	st.WriteObjectEnd()
	writeStringList(st, "warnings", a.warnings)
	writeStringList(st, "infos", a.infos)
	st.WriteObjectEnd()
	st.WriteRaw("\n")
	if err := st.Flush(); err != nil {
		return err
	}
	return st.Error
}

func writeStringList(st *jsoniter.Stream, name string, list []string) {
	if len(list) == 0 {
		return
	}
	st.WriteMore()
	st.WriteObjectField(name)
	st.WriteArrayStart()
	for i, s := range list {
		if i > 0 {
			st.WriteMore()
		}
		st.WriteString(s)
	}
	st.WriteArrayEnd()
}

func writeLabels(st *jsoniter.Stream, lset labels.Labels) {
	st.WriteObjectStart()
	i := 0
	lset.Range(func(l labels.Label) {
		if i > 0 {
			st.WriteMore()
		}
		i++
		st.WriteObjectField(l.Name)
		st.WriteString(l.Value)
	})
	st.WriteObjectEnd()
}

func writeSeries(st *jsoniter.Stream, s *series) {
	st.WriteObjectStart()
	st.WriteObjectField("metric")
	writeLabels(st, s.lset)
	if len(s.floats) > 0 {
		st.WriteMore()
		st.WriteObjectField("values")
		st.WriteArrayStart()
		for i, p := range s.floats {
			if i > 0 {
				st.WriteMore()
			}
			st.WriteArrayStart()
			jsonutil.MarshalTimestamp(p.T, st)
			st.WriteMore()
			jsonutil.MarshalFloat(p.F, st)
			st.WriteArrayEnd()
		}
		st.WriteArrayEnd()
	}
	if len(s.hists) > 0 {
		st.WriteMore()
		st.WriteObjectField("histograms")
		st.WriteArrayStart()
		for i, p := range s.hists {
			if i > 0 {
				st.WriteMore()
			}
			st.WriteArrayStart()
			jsonutil.MarshalTimestamp(p.T, st)
			st.WriteMore()
			st.WriteRaw(string(p.JSON))
			st.WriteArrayEnd()
		}
		st.WriteArrayEnd()
	}
	st.WriteObjectEnd()
}

// writeSample writes a one-point series as a vector element.
func writeSample(st *jsoniter.Stream, s *series) {
	st.WriteObjectStart()
	st.WriteObjectField("metric")
	writeLabels(st, s.lset)
	st.WriteMore()
	if len(s.hists) > 0 {
		st.WriteObjectField("histogram")
		st.WriteArrayStart()
		jsonutil.MarshalTimestamp(s.hists[0].T, st)
		st.WriteMore()
		st.WriteRaw(string(s.hists[0].JSON))
	} else {
		st.WriteObjectField("value")
		st.WriteArrayStart()
		var p promql.FPoint
		if len(s.floats) > 0 {
			p = s.floats[0]
		}
		jsonutil.MarshalTimestamp(p.T, st)
		st.WriteMore()
		jsonutil.MarshalFloat(p.F, st)
	}
	st.WriteArrayEnd()
	st.WriteObjectEnd()
}

// writeError writes an error answer in Prometheus's shape.
func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	st := jsoniter.NewStream(json, w, 512)
	st.WriteObjectStart()
	st.WriteObjectField("status")
	st.WriteString("error")
	st.WriteMore()
	st.WriteObjectField("errorType")
	st.WriteString(e.errorType)
	st.WriteMore()
	st.WriteObjectField("error")
	st.WriteString(e.msg)
	st.WriteObjectEnd()
	st.WriteRaw("\n")
	_ = st.Flush()
}

// formatFloat writes a value as Prometheus's API does.
func formatFloat(f float64) string {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	return strconv.FormatFloat(f, format, -1, 64)
}
