// Package limit sheds load: it bounds the calls a coordinator serves at
// once, in all and per caller, and refuses a call over a bound at once
// with RESOURCE_EXHAUSTED (HTTP 429) instead of queueing it. A refused
// call did nothing, so a client may retry it after a pause; the Go client
// SDK does, with backoff.
//
// Health checks and reflection are never limited, so that a loaded
// coordinator still answers its probes.
package limit

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/settle-tcc/settle/internal/auth"
)

// Config bounds the calls in flight. Zero fields mean no bound.
type Config struct {
	// MaxInFlight bounds the calls served at once by the instance.
	MaxInFlight int
	// MaxInFlightPerCaller bounds the calls of one authenticated identity
	// (by name) served at once; unauthenticated calls share the bound of
	// the name "".
	MaxInFlightPerCaller int
	// RetryAfter is the pause suggested to a refused caller (gRPC
	// "grpc-retry-pushback-ms" trailer, HTTP Retry-After). Default 100ms.
	RetryAfter time.Duration
	// Shed, if set, is called for every refused call (metrics).
	Shed func(method string, perCaller bool)
}

// Limiter counts the calls in flight.
type Limiter struct {
	cfg      Config
	inFlight atomic.Int64
	mu       sync.Mutex
	callers  map[string]int
}

// New returns a Limiter, or nil when cfg sets no bound.
func New(cfg Config) *Limiter {
	if cfg.MaxInFlight <= 0 && cfg.MaxInFlightPerCaller <= 0 {
		return nil
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 100 * time.Millisecond
	}
	return &Limiter{cfg: cfg, callers: map[string]int{}}
}

// InFlight returns the calls being served.
func (l *Limiter) InFlight() int64 { return l.inFlight.Load() }

// acquire admits a call of caller, or reports which bound refused it.
func (l *Limiter) acquire(caller string) (release func(), perCaller, ok bool) {
	if n := l.inFlight.Add(1); l.cfg.MaxInFlight > 0 && n > int64(l.cfg.MaxInFlight) {
		l.inFlight.Add(-1)
		return nil, false, false
	}
	if l.cfg.MaxInFlightPerCaller > 0 {
		l.mu.Lock()
		if l.callers[caller] >= l.cfg.MaxInFlightPerCaller {
			l.mu.Unlock()
			l.inFlight.Add(-1)
			return nil, true, false
		}
		l.callers[caller]++
		l.mu.Unlock()
		return func() {
			l.mu.Lock()
			if l.callers[caller]--; l.callers[caller] == 0 {
				delete(l.callers, caller)
			}
			l.mu.Unlock()
			l.inFlight.Add(-1)
		}, false, true
	}
	return func() { l.inFlight.Add(-1) }, false, true
}

func (l *Limiter) refusal(method string, perCaller bool) string {
	if l.cfg.Shed != nil {
		l.cfg.Shed(method, perCaller)
	}
	if perCaller {
		return "too many calls of this caller in flight (" + strconv.Itoa(l.cfg.MaxInFlightPerCaller) + "); retry after a pause"
	}
	return "the coordinator is at its limit of " + strconv.Itoa(l.cfg.MaxInFlight) + " calls in flight; retry after a pause"
}

func callerName(ctx context.Context) string {
	id, _ := auth.FromContext(ctx)
	return id.Name
}

// UnaryInterceptor admits or refuses each unary call. It runs after
// authentication, so that the per-caller bound knows the caller.
func (l *Limiter) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if auth.IsOpen(info.FullMethod) {
			return handler(ctx, req)
		}
		release, perCaller, ok := l.acquire(callerName(ctx))
		if !ok {
			_ = grpc.SetTrailer(ctx, metadata.Pairs("grpc-retry-pushback-ms", strconv.FormatInt(l.cfg.RetryAfter.Milliseconds(), 10)))
			return nil, status.Error(codes.ResourceExhausted, l.refusal(info.FullMethod, perCaller))
		}
		defer release()
		return handler(ctx, req)
	}
}

// HTTP admits or refuses each request to h, a call of method.
func (l *Limiter) HTTP(method string, h http.Handler) http.Handler {
	if auth.IsOpen(method) {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		release, perCaller, ok := l.acquire(callerName(r.Context()))
		if !ok {
			secs := int((l.cfg.RetryAfter + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_ = json.NewEncoder(w).Encode(map[string]string{"code": "RESOURCE_EXHAUSTED", "message": l.refusal(method, perCaller)})
			return
		}
		defer release()
		h.ServeHTTP(w, r)
	})
}
