// Writes synthetic.gob: a stream of the shape of upstream's persistence file, made to differ
// from what upstream writes wherever gob lets a reader notice: other type ids, struct fields in
// another order and fields upstream does not have (of every kind of gob type but interfaces), a
// nil family, a zero time and a time whose zone has a seconds offset (MarshalBinary version 2).
//
// Run with the Go toolchain only (no modules needed): go run synthetic.go
package main

import (
	"encoding/gob"
	"io"
	"math"
	"os"
	"time"
)

type GroupingKeyToMetricGroup map[string]MetricGroup

type MetricGroup struct {
	Comment string
	Metrics NameToTimestampedMetricFamilyMap
	Labels  map[string]string
}

type NameToTimestampedMetricFamilyMap map[string]TimestampedMetricFamily

type TimestampedMetricFamily struct {
	GobbableMetricFamily *GobbableMetricFamily
	Extra                []Nested
	Timestamp            time.Time
}

type Nested struct {
	A [2]int
	B map[string]float64
	C complex128
	D bool
	E []byte
	F uint
	G *Nested
}

// GobbableMetricFamily carries the protobuf bytes as they are; upstream marshals a dto.MetricFamily.
type GobbableMetricFamily struct{ raw []byte }

func (g *GobbableMetricFamily) GobEncode() ([]byte, error) { return g.raw, nil }
func (g *GobbableMetricFamily) GobDecode(b []byte) error  { g.raw = b; return nil }

func varint(n uint64) []byte {
	var out []byte
	for n >= 0x80 {
		out = append(out, byte(n)|0x80)
		n >>= 7
	}
	return append(out, byte(n))
}

func field(num int, wire int, payload []byte) []byte {
	out := varint(uint64(num<<3 | wire))
	if wire == 2 {
		out = append(out, varint(uint64(len(payload)))...)
	}
	return append(out, payload...)
}

func double(v float64) []byte {
	b := math.Float64bits(v)
	out := make([]byte, 8)
	for i := range out {
		out[i] = byte(b >> (8 * i))
	}
	return out
}

// gaugeFamily is the protobuf MetricFamily {name, help, type GAUGE, one metric job=<job>, value}.
func gaugeFamily(name, help, job string, value float64) *GobbableMetricFamily {
	label := append(field(1, 2, []byte("job")), field(2, 2, []byte(job))...)
	metric := append(field(1, 2, label), field(2, 2, field(1, 1, double(value)))...)
	mf := field(1, 2, []byte(name))
	mf = append(mf, field(2, 2, []byte(help))...)
	mf = append(mf, field(3, 0, varint(1))...)
	mf = append(mf, field(4, 2, metric)...)
	return &GobbableMetricFamily{raw: mf}
}

func main() {
	// Type ids are handed out process-wide: registering other types first moves upstream's.
	if err := gob.NewEncoder(io.Discard).Encode(struct{ X, Y []map[string][3]int }{}); err != nil {
		panic(err)
	}
	odd := time.FixedZone("odd", 3600+30)
	pushed := time.Date(2024, 5, 6, 7, 8, 9, 123456789, odd)
	store := GroupingKeyToMetricGroup{
		"job\xffsynthetic": {
			Comment: "not in upstream's type",
			Labels:  map[string]string{"job": "synthetic"},
			Metrics: NameToTimestampedMetricFamilyMap{
				"synthetic_gauge": {
					GobbableMetricFamily: gaugeFamily("synthetic_gauge", "From synthetic.go.", "synthetic", 2.5),
					Extra: []Nested{{
						A: [2]int{-1, 1},
						B: map[string]float64{"x": 17},
						C: complex(1, -2),
						D: true,
						E: []byte{0, 1, 2},
						F: 300,
						G: &Nested{F: 1},
					}},
					Timestamp: pushed,
				},
				"zero_time_gauge": {
					GobbableMetricFamily: gaugeFamily("zero_time_gauge", "Pushed at Go's zero time.", "synthetic", -1),
				},
				"nil_family": {Timestamp: pushed},
			},
		},
		"job\xffempty": {
			Labels:  map[string]string{"job": "empty"},
			Metrics: NameToTimestampedMetricFamilyMap{},
		},
	}
	f, err := os.Create("synthetic.gob")
	if err != nil {
		panic(err)
	}
	if err := gob.NewEncoder(f).Encode(store); err != nil {
		panic(err)
	}
	if err := f.Close(); err != nil {
		panic(err)
	}
}
