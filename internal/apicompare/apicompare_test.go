package apicompare

import "testing"

func TestSame(t *testing.T) {
	base := `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":[[1,"0.1"],[2,"3"]]},{"metric":{"a":"2"},"values":[[1,"NaN"]]}]},"warnings":["w1","w2"]}`
	for _, c := range []struct {
		name, got string
		same      bool
	}{
		{"identical", base, true},
		{"rounding", `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":[[1,"0.10000000000000002"],[2,"3"]]},{"metric":{"a":"2"},"values":[[1,"NaN"]]}]},"warnings":["w1","w2"]}`, true},
		{"other order", `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"2"},"values":[[1,"NaN"]]},{"metric":{"a":"1"},"values":[[1,"0.1"],[2,"3"]]}]},"warnings":["w2","w1"]}`, true},
		{"value", `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":[[1,"0.1001"],[2,"3"]]},{"metric":{"a":"2"},"values":[[1,"NaN"]]}]},"warnings":["w1","w2"]}`, false},
		{"time", `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":[[1.001,"0.1"],[2,"3"]]},{"metric":{"a":"2"},"values":[[1,"NaN"]]}]},"warnings":["w1","w2"]}`, false},
		{"label", `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"3"},"values":[[1,"0.1"],[2,"3"]]},{"metric":{"a":"2"},"values":[[1,"NaN"]]}]},"warnings":["w1","w2"]}`, false},
		{"missing warning", `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":[[1,"0.1"],[2,"3"]]},{"metric":{"a":"2"},"values":[[1,"NaN"]]}]},"warnings":["w1"]}`, false},
		{"NaN against a number", `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":[[1,"0.1"],[2,"3"]]},{"metric":{"a":"2"},"values":[[1,"0"]]}]},"warnings":["w1","w2"]}`, false},
	} {
		if err := Same([]byte(c.got), []byte(base)); (err == nil) != c.same {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
