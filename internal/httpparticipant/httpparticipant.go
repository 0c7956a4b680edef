// Package httpparticipant is the HTTP transport of the participant
// protocol: Try, Confirm and Cancel as POST <base>/try, <base>/confirm and
// <base>/cancel with the protojson form of the request as the body, and the
// classification of the participant's answer (status and body) into the
// gRPC code the rest of Settle reasons with.
//
// The contract, as docs/participant-protocol.md states it:
//
//	2xx                         OK
//	409                         FAILED_PRECONDITION (refusal / conflict)
//	400, 422                    INVALID_ARGUMENT (permanent)
//	429, 5xx                    unknown outcome, retried
//	timeout, connection error   unknown outcome, retried
//	anything else (3xx, 404...) unknown outcome, retried, and Unexpected
//
// A redirect is never followed: the client's CheckRedirect must return
// http.ErrUseLastResponse (NewHTTPClient does), so a 3xx is "anything else".
package httpparticipant

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	tccv1 "github.com/settle-tcc/settle/gen/settle/tcc/v1"
)

// Headers that repeat the request's ids, so that a participant (or a proxy
// in front of it) can route or log without parsing the body.
const (
	HeaderGID      = "Settle-Gid"
	HeaderBranchID = "Settle-Branch-Id"
)

// MaxAnswerBytes is how much of an answer's body is read; the rest is
// discarded. Only the message of an error answer is kept.
const MaxAnswerBytes = 64 << 10

// maxMessage bounds the message kept from an error answer.
const maxMessage = 512

// IsTarget reports whether a participant target is an HTTP(S) base URL
// rather than a gRPC target. The scheme is matched case-insensitively, as
// URLs allow.
func IsTarget(target string) bool {
	scheme, _, ok := strings.Cut(target, "://")
	if !ok {
		return false
	}
	scheme = strings.ToLower(scheme)
	return scheme == "http" || scheme == "https"
}

// HostPort returns the host:port an HTTP(S) participant URL connects to,
// with the scheme's default port (80, 443) when the URL has none. The host
// is lower-cased; IPv6 hosts are bracketed.
func HostPort(target string) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", err
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return "", errors.New("no host")
	}
	port := u.Port()
	if port == "" {
		if strings.EqualFold(u.Scheme, "https") {
			port = "443"
		} else {
			port = "80"
		}
	}
	return net.JoinHostPort(host, port), nil
}

// AnswerError is a participant's answer over HTTP that is not a success,
// or a call that got no answer. It carries the gRPC code the answer stands
// for (GRPCStatus, so status.Code sees it), the HTTP status (0 when there
// was no answer), and whether the answer is outside the contract.
type AnswerError struct {
	HTTPStatus int
	Code       codes.Code
	Message    string
	// Unexpected is set for an answer the contract does not define (a
	// redirect, 404, 405, ...): retried like an unknown outcome, but a
	// sign of a misconfigured participant URL that an operator must see.
	Unexpected bool
	err        error // the transport error of a call without an answer
}

func (e *AnswerError) Error() string {
	return fmt.Sprintf("%s: %s", e.Code, e.detail())
}

// detail is the error's text without its code.
func (e *AnswerError) detail() string {
	switch {
	case e.HTTPStatus == 0:
		return e.Message
	case e.Unexpected:
		return fmt.Sprintf("HTTP %d outside the participant contract: %s", e.HTTPStatus, e.Message)
	}
	return fmt.Sprintf("HTTP %d: %s", e.HTTPStatus, e.Message)
}

// Unwrap returns the transport error of a call without an answer (e.g.
// context.DeadlineExceeded), or nil.
func (e *AnswerError) Unwrap() error { return e.err }

// GRPCStatus lets status.Code and status.Convert see the answer's code.
func (e *AnswerError) GRPCStatus() *status.Status {
	return status.New(e.Code, e.detail())
}

// Classify turns a participant's HTTP answer into nil (2xx) or an
// *AnswerError. body is the start of the answer's body: its "message"
// when it is a JSON object with one ({"code":..., "message":...}, the
// coordinator's own error form), else its text, shortened.
func Classify(httpStatus int, body []byte) error {
	if httpStatus >= 200 && httpStatus <= 299 {
		return nil
	}
	e := &AnswerError{HTTPStatus: httpStatus, Message: message(httpStatus, body)}
	switch {
	case httpStatus == http.StatusConflict:
		e.Code = codes.FailedPrecondition
	case httpStatus == http.StatusBadRequest, httpStatus == http.StatusUnprocessableEntity:
		e.Code = codes.InvalidArgument
	case httpStatus == http.StatusTooManyRequests:
		e.Code = codes.ResourceExhausted
	case httpStatus == http.StatusGatewayTimeout:
		e.Code = codes.DeadlineExceeded
	case httpStatus >= 500 && httpStatus <= 599:
		e.Code = codes.Unavailable
	default:
		e.Code = codes.Unknown
		e.Unexpected = true
	}
	return e
}

// message extracts a printable, bounded message from an answer's body.
func message(httpStatus int, body []byte) string {
	var obj struct {
		Message string `json:"message"`
	}
	text := ""
	if json.Unmarshal(body, &obj) == nil && obj.Message != "" {
		text = obj.Message
	} else {
		text = string(body)
	}
	text = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == utf8.RuneError {
			return ' '
		}
		return r
	}, strings.TrimSpace(text))
	if len(text) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut] + "…"
	}
	if text == "" {
		text = http.StatusText(httpStatus)
		if text == "" {
			text = "(no message)"
		}
	}
	return text
}

// NewHTTPClient returns an http.Client for participant calls: TLS from
// tlsCfg (nil: the system roots), at most maxConnsPerHost connections to
// one participant host (0: no bound), idle connections closed after idle,
// and redirects never followed.
func NewHTTPClient(tlsCfg *tls.Config, maxConnsPerHost, maxIdle int, idle time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // the allow-list names the participant, not a proxy
	if tlsCfg != nil {
		tr.TLSClientConfig = tlsCfg.Clone()
	}
	tr.MaxConnsPerHost = maxConnsPerHost
	tr.MaxIdleConns = maxIdle
	if maxConnsPerHost > 0 {
		tr.MaxIdleConnsPerHost = maxConnsPerHost
	}
	tr.IdleConnTimeout = idle
	tr.ResponseHeaderTimeout = 0 // the caller's context bounds the call
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Client calls one HTTP participant. It implements
// tccv1.ParticipantServiceClient, so the SDK and the coordinator call an
// HTTP participant through the same interface as a gRPC one; the
// grpc.CallOptions are ignored.
type Client struct {
	hc   *http.Client
	base string
}

var _ tccv1.ParticipantServiceClient = (*Client)(nil)

// New returns a Client for the participant at base (an http:// or
// https:// URL; a trailing slash is dropped) using hc, which must not
// follow redirects (see NewHTTPClient).
func New(hc *http.Client, base string) *Client {
	return &Client{hc: hc, base: strings.TrimRight(base, "/")}
}

// Try implements tccv1.ParticipantServiceClient.
func (c *Client) Try(ctx context.Context, in *tccv1.TryRequest, _ ...grpc.CallOption) (*tccv1.TryResponse, error) {
	if err := c.call(ctx, "try", in.GetGid(), in.GetBranchId(), in); err != nil {
		return nil, err
	}
	return &tccv1.TryResponse{}, nil
}

// Confirm implements tccv1.ParticipantServiceClient.
func (c *Client) Confirm(ctx context.Context, in *tccv1.ConfirmRequest, _ ...grpc.CallOption) (*tccv1.ConfirmResponse, error) {
	if err := c.call(ctx, "confirm", in.GetGid(), in.GetBranchId(), in); err != nil {
		return nil, err
	}
	return &tccv1.ConfirmResponse{}, nil
}

// Cancel implements tccv1.ParticipantServiceClient.
func (c *Client) Cancel(ctx context.Context, in *tccv1.CancelRequest, _ ...grpc.CallOption) (*tccv1.CancelResponse, error) {
	if err := c.call(ctx, "cancel", in.GetGid(), in.GetBranchId(), in); err != nil {
		return nil, err
	}
	return &tccv1.CancelResponse{}, nil
}

func (c *Client) call(ctx context.Context, op, gid, branchID string, in proto.Message) error {
	_, err := post(ctx, c.hc, c.base, op, gid, branchID, in)
	return err
}

// post sends in as POST <base>/<op> and returns the start of a 2xx
// answer's body, or the answer classified as an error (Classify).
func post(ctx context.Context, hc *http.Client, base, op, gid, branchID string, in proto.Message) ([]byte, error) {
	body, err := protojson.Marshal(in)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encode %s request: %v", op, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/"+op, bytes.NewReader(body))
	if err != nil {
		return nil, &AnswerError{Code: codes.InvalidArgument, Message: fmt.Sprintf("URL: %v", err), err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set(HeaderGID, gid)
	if branchID != "" {
		req.Header.Set(HeaderBranchID, branchID)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, noAnswer(ctx, err)
	}
	defer resp.Body.Close()
	// The status line is the answer; a body that breaks off only shortens
	// an error's message.
	start, _ := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes))
	// Drain a bounded remainder so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxAnswerBytes))
	return start, Classify(resp.StatusCode, start)
}

// noAnswer classifies a call that got no HTTP answer: always an unknown
// outcome (the request may have been applied).
func noAnswer(ctx context.Context, err error) error {
	code := codes.Unavailable
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled) || errors.Is(ctx.Err(), context.Canceled):
		code = codes.Canceled
	}
	var ue *url.Error
	msg := err.Error()
	if errors.As(err, &ue) {
		msg = ue.Err.Error()
	}
	return &AnswerError{Code: code, Message: "no answer: " + msg, err: err}
}
