package server

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	adminv1 "github.com/settle-tcc/settle/gen/settle/admin/v1"
	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
	"github.com/settle-tcc/settle/internal/console"
)

// OpenAPI is the generated OpenAPI 2.0 description of the HTTP/JSON API
// (the same file as gen/openapi/settle.swagger.json), served at
// GET /openapi.json.
//
//go:embed openapi/settle.swagger.json
var OpenAPI []byte

// HTTPConfig configures the coordinator's HTTP listener.
type HTTPConfig struct {
	// Services calls the coordinator and admin services; the gateway's
	// routes go through it, so through the gRPC server's interceptors.
	// Required: register CoordinatorService and AdminService on it.
	Services *Local
	// Registry is served at /metrics; nil serves no /metrics.
	Registry *prometheus.Registry
	// Guard wraps each HTTP-only endpoint (/healthz, /metrics,
	// /openapi.json, /console/) with the authorization and in-flight limit of its
	// auth.Policy name ("http:metrics", ...); nil serves them unguarded.
	// The API routes are guarded by Services' interceptors instead.
	Guard func(method string, h http.Handler) http.Handler
	// MaxBodyBytes bounds a request body; a longer one is refused with
	// 400 INVALID_ARGUMENT before anything is done. Default
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

// DefaultMaxBodyBytes is the default bound of an HTTP request body: a
// gRPC message at grpc-go's default receive limit (4 MiB) with its bytes
// in base64, plus 64 KiB of JSON around them.
const DefaultMaxBodyBytes = 4<<20*4/3 + 64<<10

// MaxBodyBytes returns the body bound that lets through every request the
// coordinator can accept with these limits: maxBranches payloads of
// maxPayload bytes each in base64 plus 64 KiB of JSON around them, capped
// at DefaultMaxBodyBytes (what the gRPC listener accepts).
func MaxBodyBytes(maxPayload, maxBranches int) int64 {
	n := int64(maxPayload+2)/3*4*int64(maxBranches) + 64<<10
	return min(n, DefaultMaxBodyBytes)
}

// HTTPHandler serves the HTTP listener:
//
//	the HTTP/JSON API       every CoordinatorService and AdminService RPC, by the grpc-gateway
//	                        code generated from proto/settle/gateway.yaml (docs/http-api.md)
//	GET  /openapi.json      its OpenAPI description
//	GET  /v1/checkback      405: check-back may record a decision, so it is POST only
//	GET  /metrics           Prometheus metrics
//	GET  /healthz           200 while serving
//	GET  /console/          the operator console (internal/console; /console redirects)
//
// JSON is the protobuf JSON mapping (camelCase fields, enum names as
// strings, bytes in base64, durations as "1.5s"); unknown fields, trailing
// data and bodies over MaxBodyBytes are refused. Errors are
// {"code": "NOT_FOUND", "message": ...} with the HTTP status of the gRPC
// code (httpStatus).
func HTTPHandler(cfg HTTPConfig) (http.Handler, error) {
	if cfg.Services == nil {
		return nil, errors.New("http: no services")
	}
	if cfg.Guard == nil {
		cfg.Guard = func(_ string, h http.Handler) http.Handler { return h }
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &jsonMarshaler{JSONPb: runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}}),
		runtime.WithErrorHandler(writeError),
		runtime.WithRoutingErrorHandler(routingError),
		// Only the Authorization header (passed by the gateway itself) and
		// X-Forwarded-For/-Host reach the services: no other header
		// becomes metadata, so none can pose as a credential.
		runtime.WithIncomingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithOutgoingTrailerMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithDisablePathLengthFallback(),
		// grpc-gateway keeps the query parser in a package variable: every
		// gateway of the process parses strictly.
		runtime.SetQueryParameterParser(strictQuery{}),
	)
	cc := cfg.Services
	ctx := context.Background()
	if err := tccv1.RegisterCoordinatorServiceHandlerClient(ctx, gw, tccv1.NewCoordinatorServiceClient(cc)); err != nil {
		return nil, err
	}
	if err := adminv1.RegisterAdminServiceHandlerClient(ctx, gw, adminv1.NewAdminServiceClient(cc)); err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	mux.Handle("/", &gateway{mux: gw, limit: cfg.MaxBodyBytes})
	mux.HandleFunc("GET /v1/checkback", checkBackGet)
	mux.Handle("GET /openapi.json", cfg.Guard("http:openapi", http.HandlerFunc(serveOpenAPI)))
	mux.Handle("GET /healthz", cfg.Guard("http:healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })))
	mux.Handle("/console/", cfg.Guard("http:console", console.Handler()))
	mux.Handle("/console", console.Redirect())
	if cfg.Registry != nil {
		mux.Handle("GET /metrics", cfg.Guard("http:metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{})))
	}
	return mux, nil
}

// gateway bounds the request body and puts the HTTP connection's peer in
// the request's context, where the in-process call gives it to the gRPC
// interceptors: the address, and the verified client certificate chain of
// a mutual-TLS connection (auth takes the identity from it).
type gateway struct {
	mux   *runtime.ServeMux
	limit int64
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, g.limit)
	}
	p := &peer.Peer{Addr: httpAddr(r.RemoteAddr), LocalAddr: httpAddr("")}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		p.LocalAddr = la
	}
	if r.TLS != nil {
		p.AuthInfo = credentials.TLSInfo{State: *r.TLS, CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}
	}
	g.mux.ServeHTTP(w, r.WithContext(peer.NewContext(r.Context(), p)))
}

// httpAddr is an HTTP client's address ("host:port") as a net.Addr.
type httpAddr string

func (a httpAddr) Network() string { return "tcp" }
func (a httpAddr) String() string  { return string(a) }

// jsonMarshaler is grpc-gateway's protojson marshaler with a decoder that
// says clearly what is wrong with a body (too long, not JSON, not the
// request message).
type jsonMarshaler struct {
	runtime.JSONPb
}

// NewDecoder returns a decoder of one JSON value; the gateway refuses
// whatever follows it (Token must then return io.EOF).
func (m *jsonMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return &bodyDecoder{dec: json.NewDecoder(r), m: m}
}

type bodyDecoder struct {
	dec *json.Decoder
	m   *jsonMarshaler
}

func (d *bodyDecoder) Decode(v any) error {
	var raw json.RawMessage
	if err := d.dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return err // no body: the request message stays empty
		}
		return d.explain(err)
	}
	if err := d.m.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("the body is not a valid request: %w", err)
	}
	return nil
}

func (d *bodyDecoder) Token() (json.Token, error) {
	t, err := d.dec.Token()
	if err != nil && !errors.Is(err, io.EOF) {
		return t, d.explain(err)
	}
	return t, err
}

func (d *bodyDecoder) explain(err error) error {
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		return fmt.Errorf("the body is longer than the limit of %d bytes", mbe.Limit)
	}
	return fmt.Errorf("the body is not JSON: %w", err)
}

// strictQuery is grpc-gateway's query parser refusing a parameter that
// names no field of the request, as unknown body fields are refused: a
// misspelt filter (?stat=COMMITTED) must not silently match everything.
type strictQuery struct{ runtime.DefaultQueryParser }

func (q strictQuery) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	for key := range values {
		if !hasFieldPath(msg.ProtoReflect().Descriptor(), strings.Split(key, ".")) {
			return fmt.Errorf("unknown query parameter %q", key)
		}
	}
	return q.DefaultQueryParser.Parse(msg, values, filter)
}

// hasFieldPath reports whether path (field names, proto or JSON) leads
// from md to a field.
func hasFieldPath(md protoreflect.MessageDescriptor, path []string) bool {
	for i, name := range path {
		fd := md.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			fd = md.Fields().ByJSONName(name)
		}
		switch {
		case fd == nil:
			return false
		case i == len(path)-1:
			return true
		case fd.Message() == nil || fd.IsList() || fd.IsMap():
			return false
		}
		md = fd.Message()
	}
	return false
}

// writeError answers an error as {"code": "NOT_FOUND", "message": ...}
// with the HTTP status of its gRPC code; RESOURCE_EXHAUSTED carries
// Retry-After (from the limiter's pushback trailer), UNAUTHENTICATED a
// WWW-Authenticate challenge.
func writeError(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
	httpCode := 0
	var hse *runtime.HTTPStatusError
	if errors.As(err, &hse) {
		httpCode, err = hse.HTTPStatus, hse.Err
	}
	st := status.Convert(err)
	if httpCode == 0 {
		httpCode = httpStatus(st.Code())
	}
	switch st.Code() {
	case codes.Unauthenticated:
		w.Header().Set("WWW-Authenticate", `Bearer realm="settle"`)
	case codes.ResourceExhausted:
		secs := 1
		if md, ok := runtime.ServerMetadataFromContext(ctx); ok {
			if v := md.TrailerMD.Get("grpc-retry-pushback-ms"); len(v) > 0 {
				if ms, err := strconv.Atoi(v[0]); err == nil && ms > 0 {
					secs = (ms + 999) / 1000
				}
			}
		}
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	writeJSONError(w, httpCode, codeName(st.Code()), st.Message())
}

func writeJSONError(w http.ResponseWriter, httpCode int, code, message string) {
	w.Header().Del("Trailer")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpCode)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": code, "message": message})
}

// routingError answers a path no route serves (404 NOT_FOUND) or a
// method the path does not take (405 METHOD_NOT_ALLOWED).
func routingError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpCode int) {
	switch httpCode {
	case http.StatusNotFound:
		writeJSONError(w, httpCode, "NOT_FOUND", "no route "+r.Method+" "+r.URL.Path+"; the routes are in GET /openapi.json")
	case http.StatusMethodNotAllowed:
		writeJSONError(w, httpCode, "METHOD_NOT_ALLOWED", r.Method+" is not a method of "+r.URL.Path+"; the routes are in GET /openapi.json")
	default:
		writeJSONError(w, httpCode, "INVALID_ARGUMENT", http.StatusText(httpCode))
	}
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(OpenAPI)
}

// checkBackGet refuses a GET of the check-back: it would record decisions.
func checkBackGet(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Allow", http.MethodPost)
	writeJSONError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED",
		`check-back may record a decision, so it is POST only: POST /v1/checkback {"gid":"G","branchId":"B"}; GET /v1/transactions/{gid} reads a transaction without changing it`)
}

// codeName is the canonical name of a gRPC code (google.rpc.Code).
func codeName(c codes.Code) string {
	names := [...]string{
		codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN", codes.InvalidArgument: "INVALID_ARGUMENT",
		codes.DeadlineExceeded: "DEADLINE_EXCEEDED", codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
		codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
		codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED", codes.OutOfRange: "OUT_OF_RANGE",
		codes.Unimplemented: "UNIMPLEMENTED", codes.Internal: "INTERNAL", codes.Unavailable: "UNAVAILABLE",
		codes.DataLoss: "DATA_LOSS", codes.Unauthenticated: "UNAUTHENTICATED",
	}
	if int(c) < len(names) {
		return names[c]
	}
	return c.String()
}

// httpStatus is grpc-gateway's mapping of gRPC codes to HTTP statuses
// (FAILED_PRECONDITION is 400, ABORTED 409, CANCELLED 499).
func httpStatus(c codes.Code) int { return runtime.HTTPStatusFromCode(c) }
