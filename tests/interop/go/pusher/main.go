// Command pusher drives client_golang's push package, unmodified, against a Pushgateway. It is
// built in GOPATH mode over Debian's Go sources (golang-github-prometheus-client-golang-dev), so
// it needs no network and tests the client version Debian ships.
//
// Every HTTP exchange is printed to stdout as one JSON object (what the client sent and what it
// got back), so that the driver can assert on the client's side of the conversation as well as on
// the gateway's state. The exit status is 1 when the push package reports an error.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	"github.com/prometheus/common/expfmt"
)

// recorder is the push package's HTTPDoer hook, used to observe requests without changing them.
type recorder struct {
	inner *http.Client
	out   *json.Encoder
}

func (r recorder) Do(req *http.Request) (*http.Response, error) {
	record := map[string]interface{}{
		"method":           req.Method,
		"path":             req.URL.EscapedPath(),
		"content_type":     req.Header.Get("Content-Type"),
		"content_encoding": req.Header.Get("Content-Encoding"),
		"content_length":   req.ContentLength,
		"basic_auth":       req.Header.Get("Authorization") != "",
		"expire_after":     req.Header.Get("Pushgateway-Expire-After"),
	}
	resp, err := r.inner.Do(req)
	if err != nil {
		record["error"] = err.Error()
	} else {
		record["status"] = resp.StatusCode
		record["proto"] = resp.Proto
	}
	_ = r.out.Encode(record)
	return resp, err
}

// expiring sets a group's expiry (the gateway's Pushgateway-Expire-After header) on every request,
// as docs/expiry-and-limits.md shows for client_golang releases without Pusher.Header (Debian's
// 1.14 is one).
type expiring struct {
	inner push.HTTPDoer
	after string
}

func (e expiring) Do(req *http.Request) (*http.Response, error) {
	req.Header.Set("Pushgateway-Expire-After", e.after)
	return e.inner.Do(req)
}

func main() {
	gateway := flag.String("gateway", "", "base URL of the gateway")
	step := flag.String("step", "", "push | add | push-text (with an expiry of 1h) | push-doomed | delete-doomed")
	transport := flag.String("transport", "plain", "value of the grouping label that tells the suite's gateways apart")
	caFile := flag.String("ca", "", "CA certificate that signed the gateway's certificate")
	certFile := flag.String("cert", "", "client certificate")
	keyFile := flag.String("key", "", "client key")
	user := flag.String("user", "", "basic auth user")
	password := flag.String("password", "", "basic auth password")
	flag.Parse()

	client := &http.Client{Timeout: 20 * time.Second}
	if *caFile != "" || *certFile != "" {
		config := &tls.Config{}
		if *caFile != "" {
			pem, err := os.ReadFile(*caFile)
			fail(err)
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				fail(fmt.Errorf("no certificate in %s", *caFile))
			}
			config.RootCAs = pool
		}
		if *certFile != "" {
			pair, err := tls.LoadX509KeyPair(*certFile, *keyFile)
			fail(err)
			config.Certificates = []tls.Certificate{pair}
		}
		// A custom TLS config turns off Go's automatic HTTP/2; ask for it, as the gateway offers h2.
		client.Transport = &http.Transport{TLSClientConfig: config, ForceAttemptHTTP2: true}
	}
	doer := recorder{inner: client, out: json.NewEncoder(os.Stdout)}

	pusher := func(job string, grouping map[string]string) *push.Pusher {
		p := push.New(*gateway, job).Client(doer)
		for name, value := range grouping {
			p = p.Grouping(name, value)
		}
		if *user != "" {
			p = p.BasicAuth(*user, *password)
		}
		return p
	}
	// Values that exercise every path encoding the client has: '/' (base64), the empty value
	// (base64 "="), a space (QueryEscape turns it into '+') and UTF-8 (percent-encoded).
	mainGroup := map[string]string{
		"instance":  "go host/1",
		"path":      "/var/lib/batch",
		"empty":     "",
		"team":      "a b",
		"locale":    "Πρόβα",
		"transport": *transport,
	}

	switch *step {
	case "push":
		fail(pusher("go-interop", mainGroup).Gatherer(everyType()).Push())
	case "add":
		registry := prometheus.NewRegistry()
		temperature := prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "go_interop_temperature_celsius", Help: "A gauge replaced by Add.",
		})
		temperature.Set(21.5)
		added := prometheus.NewCounter(prometheus.CounterOpts{
			Name: "go_interop_added_total", Help: "A counter that only Add pushes.",
		})
		added.Inc()
		registry.MustRegister(temperature, added)
		fail(pusher("go-interop", mainGroup).Gatherer(registry).Add())
	case "push-text":
		registry := prometheus.NewRegistry()
		small := prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "go_interop_text_small", Help: "Pushed in the text format.",
		})
		small.Set(1e-05)
		registry.MustRegister(small)
		group := map[string]string{"format": "text", "transport": *transport}
		p := pusher("go-interop", group).Client(expiring{inner: doer, after: "1h"})
		fail(p.Gatherer(registry).Format(expfmt.FmtText).Push())
	case "push-doomed", "delete-doomed":
		// A job with '/' is sent as job@base64.
		p := pusher("go/interop", map[string]string{"instance": "doomed", "transport": *transport})
		if *step == "delete-doomed" {
			fail(p.Delete())
			return
		}
		doomed := prometheus.NewGauge(prometheus.GaugeOpts{Name: "go_interop_doomed", Help: "Deleted again."})
		doomed.Set(1)
		fail(p.Collector(doomed).Push())
	default:
		fail(fmt.Errorf("unknown step %q", *step))
	}
}

// everyType registers one metric of each kind, with values the driver knows.
func everyType() *prometheus.Registry {
	registry := prometheus.NewRegistry()

	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "go_interop_requests_total", Help: "Requests by code.",
	}, []string{"code"})
	requests.WithLabelValues("200").Add(42)
	requests.WithLabelValues("500").Add(7)

	temperature := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "go_interop_temperature_celsius", Help: "A gauge replaced by Add.",
	})
	temperature.Set(-3.5)

	latency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "go_interop_latency_seconds", Help: "A classic histogram.",
		Buckets: []float64{0.1, 0.5, 1},
	})
	for _, v := range []float64{0.05, 0.3, 0.3, 0.7, 2} {
		latency.Observe(v)
	}

	// No classic buckets and a bucket factor: only native (sparse) buckets, which the text format
	// cannot carry, so Prometheus sees them only through a protobuf scrape.
	native := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "go_interop_native_seconds", Help: "A native histogram.",
		NativeHistogramBucketFactor: 1.1,
	})
	for _, v := range []float64{0, 1.5, 1.5, 3, 100} {
		native.Observe(v)
	}

	duration := prometheus.NewSummary(prometheus.SummaryOpts{
		Name: "go_interop_duration_seconds", Help: "A summary.",
		Objectives: map[float64]float64{0.5: 0.05, 0.9: 0.01},
	})
	for v := 1; v <= 10; v++ {
		duration.Observe(float64(v))
	}

	untyped := prometheus.NewUntypedFunc(prometheus.UntypedOpts{
		Name: "go_interop_untyped", Help: "An untyped metric.",
	}, func() float64 { return 17 })

	registry.MustRegister(requests, temperature, latency, native, duration, untyped)
	return registry
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "pusher:", err)
		os.Exit(1)
	}
}
