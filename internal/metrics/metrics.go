// Package metrics defines the coordinator's Prometheus metrics and the
// hooks that feed them. Every metric is prefixed settle_.
package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/settle-tcc/settle/internal/tcc"
)

// Metrics holds the collectors of one coordinator instance.
type Metrics struct {
	Registry *prometheus.Registry

	decisions      *prometheus.CounterVec
	finished       *prometheus.CounterVec
	branchCalls    *prometheus.CounterVec
	branchLatency  *prometheus.HistogramVec
	attention      prometheus.Counter
	conflicts      prometheus.Counter
	rpcLatency     *prometheus.HistogramVec
	RecoveryDue    prometheus.Gauge
	RecoveryPasses prometheus.Counter
	purged         prometheus.Counter
	shed           *prometheus.CounterVec
	deferred       prometheus.Counter
	deciderCalls   *prometheus.CounterVec
	deciderLatency prometheus.Histogram
}

// New registers the collectors (plus Go and process collectors) on a new
// registry.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "settle_decisions_total", Help: "Decisions recorded by this instance, by outcome (commit, abort).",
		}, []string{"outcome"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "settle_transactions_finished_total", Help: "Transactions this instance moved to a final state.",
		}, []string{"state"}),
		branchCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "settle_branch_calls_total", Help: "Confirm/Cancel calls to participants, by call and result (ok, error, conflict, invalid: the participant rejected the payload; rate_limited: not sent, over -participant-retry-rate).",
		}, []string{"call", "result"}),
		branchLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "settle_branch_call_seconds", Help: "Latency of Confirm/Cancel calls to participants.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"call"}),
		attention: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "settle_transactions_needing_attention_total",
			Help: "Transactions flagged needs_attention (retry horizon reached or conflict). Alert on any increase.",
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "settle_branch_conflicts_total",
			Help: "Branches whose participant reported the opposite outcome (S11). Alert on any increase.",
		}),
		rpcLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "settle_rpc_seconds", Help: "Latency of the coordinator's gRPC methods, by method and status code.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"method", "code"}),
		RecoveryDue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "settle_recovery_due", Help: "Due transactions found by the last recovery pass (capped at the batch size): the backlog.",
		}),
		RecoveryPasses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "settle_recovery_passes_total", Help: "Recovery passes run.",
		}),
		purged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "settle_purged_total", Help: "Finished transactions deleted by retention.",
		}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "settle_rpc_shed_total", Help: "Calls refused with RESOURCE_EXHAUSTED by the in-flight limits, by method and limit (instance, caller).",
		}, []string{"method", "limit"}),
		deciderCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "settle_decider_calls_total",
			Help: "Calls to initiators' deciders at the deadline of TRYING transactions, by result (commit, abort, error; unexpected: an answer outside the decider contract).",
		}, []string{"result"}),
		deciderLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "settle_decider_call_seconds", Help: "Latency of calls to initiators' deciders.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		deferred: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "settle_delivery_rounds_deferred_total",
			Help: "Decisions whose delivery round was left to the recovery loop because -max-delivery-rounds rounds were running (delivered after the lease).",
		}),
	}
	r.MustRegister(m.decisions, m.finished, m.branchCalls, m.branchLatency, m.attention, m.conflicts, m.rpcLatency,
		m.RecoveryDue, m.RecoveryPasses, m.purged, m.shed, m.deferred, m.deciderCalls, m.deciderLatency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Hooks returns tcc hooks that update the metrics; fault is chained in.
func (m *Metrics) Hooks(fault func(string)) tcc.Hooks {
	return tcc.Hooks{
		Decided: func(_ string, o tcc.Outcome, _ string) { m.decisions.WithLabelValues(o.String()).Inc() },
		Delivered: func(_, _ string, o tcc.Outcome, err error, took time.Duration) {
			call := "confirm"
			if o == tcc.Abort {
				call = "cancel"
			}
			result := "ok"
			switch {
			case errors.Is(err, tcc.ErrRateLimited):
				m.branchCalls.WithLabelValues(call, "rate_limited").Inc()
				return // not sent: no latency
			case errors.Is(err, tcc.ErrParticipantRefused):
				result = "conflict"
			case errors.Is(err, tcc.ErrParticipantInvalid):
				result = "invalid"
			case err != nil:
				result = "error"
			}
			m.branchCalls.WithLabelValues(call, result).Inc()
			m.branchLatency.WithLabelValues(call).Observe(took.Seconds())
		},
		Finished:      func(_ string, s tcc.State) { m.finished.WithLabelValues(string(s)).Inc() },
		Attention:     func(string, string) { m.attention.Inc() },
		Conflict:      func(string, string) { m.conflicts.Inc() },
		FaultPoint:    fault,
		RoundDeferred: func(string) { m.deferred.Inc() },
		DeciderAsked: func(_ string, o tcc.Outcome, err error, took time.Duration) {
			result := o.String()
			switch {
			case errors.Is(err, tcc.ErrParticipantUnexpected) || errors.Is(err, tcc.ErrParticipantInvalid):
				result = "unexpected"
			case err != nil:
				result = "error"
			}
			m.deciderCalls.WithLabelValues(result).Inc()
			m.deciderLatency.Observe(took.Seconds())
		},
	}
}

// UnaryInterceptor records settle_rpc_seconds.
func (m *Metrics) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		m.rpcLatency.WithLabelValues(info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
		return resp, err
	}
}

// StoreRoundTrips exposes count, the store's running count of database
// round trips made by the hot-path calls, as settle_store_round_trips_total.
func (m *Metrics) StoreRoundTrips(count func() int64) {
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "settle_store_round_trips_total",
		Help: "Database round trips of the store's hot-path calls (Begin, register, decide, delivery round, claim, get): statements, BEGIN and COMMIT each count; a multi-statement write on MySQL counts once.",
	}, func() float64 { return float64(count()) }))
}

// Shed counts a call refused by an in-flight limit (limit.Config.Shed).
func (m *Metrics) Shed(method string, perCaller bool) {
	l := "instance"
	if perCaller {
		l = "caller"
	}
	m.shed.WithLabelValues(method, l).Inc()
}

// InFlight exposes the calls being served as settle_rpc_in_flight.
func (m *Metrics) InFlight(count func() int64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "settle_rpc_in_flight", Help: "Calls being served (counted against -max-in-flight).",
	}, func() float64 { return float64(count()) }))
}

// Pass implements recovery.Observer.
func (m *Metrics) Pass(due int) {
	m.RecoveryPasses.Inc()
	m.RecoveryDue.Set(float64(due))
}

// Purged implements recovery.Observer.
func (m *Metrics) Purged(n int) { m.purged.Add(float64(n)) }
