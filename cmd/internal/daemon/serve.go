package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	stdnet "net"
	"net/http"
	"net/http/pprof"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ErrLogConfig reports an unknown log format or level.
var ErrLogConfig = errors.New("daemon: bad log configuration")

// Logger builds the daemon's logger writing to w.
func (o Options) Logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return nil, fmt.Errorf("%w: level %q", ErrLogConfig, o.LogLevel)
	}
	ho := &slog.HandlerOptions{Level: level, ReplaceAttr: durationsAsText}
	switch o.LogFormat {
	case "", "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	}
	return nil, fmt.Errorf("%w: format %q (want json or text)", ErrLogConfig, o.LogFormat)
}

// durationsAsText logs a time.Duration as its text ("1.5s"), not as the
// integer nanoseconds the JSON handler writes by default.
func durationsAsText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// NewRegistry returns a registry with the Go runtime and process collectors;
// the node registers its own metrics on it.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Mux returns the HTTP handlers: /metrics from reg, /live (the process
// answers), /ready (ready returns nil; nil ready means always), and with
// pprof the /debug/pprof/ handlers.
func Mux(reg *prometheus.Registry, ready func() error, withPprof bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/live", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		if ready != nil {
			if err := ready(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Service is what Serve runs: a started node that can drain.
type Service struct {
	// Name is used in log lines.
	Name string
	// Registry is the node's metrics registry (served on /metrics).
	Registry *prometheus.Registry
	// Ready, if set, decides /ready.
	Ready func() error
	// Drain stops the node gracefully within ctx's deadline.
	Drain func(ctx context.Context) error
	// Handler, if set, serves every path of the HTTP address the daemon's
	// own handlers (Mux) do not: a node's HTTP API, such as the
	// pageserver's management API.
	Handler http.Handler
}

// SignalContext is cancelled on SIGTERM or SIGINT.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}

// Serve serves the HTTP side (if o.HTTPAddr is set) until ctx ends (use
// SignalContext), then drains svc for at most o.DrainTimeout and shuts the
// HTTP server down. It returns the drain's error.
func Serve(ctx context.Context, o Options, log *slog.Logger, svc Service) error {
	var httpSrv *http.Server
	if o.HTTPAddr != "" {
		lis, err := stdnet.Listen("tcp", o.HTTPAddr)
		if err != nil {
			_ = svc.Drain(context.Background())
			return fmt.Errorf("daemon: http listen: %w", err)
		}
		mux := Mux(svc.Registry, svc.Ready, o.Pprof)
		if svc.Handler != nil {
			mux.Handle("/", svc.Handler)
		}
		httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = httpSrv.Serve(lis) }()
		log.Info("http serving", "addr", lis.Addr().String(), "pprof", o.Pprof)
	}
	<-ctx.Done()
	log.Info("shutting down", "service", svc.Name, "drain_timeout", o.DrainTimeout)
	timeout := o.DrainTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	dctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := svc.Drain(dctx)
	if httpSrv != nil {
		_ = httpSrv.Shutdown(dctx)
	}
	log.Info("stopped", "service", svc.Name, "err", err)
	return err
}
