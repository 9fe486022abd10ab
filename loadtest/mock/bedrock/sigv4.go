package bedrock

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	sigAlgorithm = "AWS4-HMAC-SHA256"
	amzDateFmt   = "20060102T150405Z"
	// maxSkew is how far X-Amz-Date may be from the clock, as AWS allows.
	maxSkew = 15 * time.Minute

	msgBadSignature = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)

// sigV4Auth is a parsed "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
// Signature=..." header.
type sigV4Auth struct {
	accessKey, date, region, service string
	signedHeaders                    []string
	signature                        string
}

func parseSigV4(h string) (sigV4Auth, bool) {
	var a sigV4Auth
	rest, ok := strings.CutPrefix(h, sigAlgorithm+" ")
	if !ok {
		return a, false
	}
	var cred, signed string
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return a, false
		}
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signed = v
		case "Signature":
			a.signature = v
		default:
			return a, false
		}
	}
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || scope[4] != "aws4_request" || signed == "" || len(a.signature) != 64 {
		return a, false
	}
	a.accessKey, a.date, a.region, a.service = scope[0], scope[1], scope[2], scope[3]
	a.signedHeaders = strings.Split(signed, ";")
	if !slices.IsSorted(a.signedHeaders) {
		return a, false
	}
	return a, true
}

// verifySigV4 checks r's signature; it returns the exception type and
// message of a failure, or "" when the signature is good.
func verifySigV4(r *http.Request, body []byte, cfg *Config) (typ, msg string) {
	a, ok := parseSigV4(r.Header.Get("Authorization"))
	if !ok {
		return "IncompleteSignatureException", "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters with algorithm " + sigAlgorithm + "."
	}
	if a.accessKey != cfg.AccessKeyID {
		return "UnrecognizedClientException", "The security token included in the request is invalid."
	}
	if a.service != "bedrock" {
		return "InvalidSignatureException", "Credential should be scoped to correct service: 'bedrock'."
	}
	if a.region != cfg.Region {
		return "InvalidSignatureException", "Credential should be scoped to a valid region."
	}
	if !slices.Contains(a.signedHeaders, "host") || !slices.Contains(a.signedHeaders, "x-amz-date") {
		return "InvalidSignatureException", "'Host' and 'X-Amz-Date' must be signed headers."
	}
	when, err := time.Parse(amzDateFmt, r.Header.Get("X-Amz-Date"))
	if err != nil || when.Format("20060102") != a.date {
		return "IncompleteSignatureException", "Date must be in ISO-8601 'basic format' and match the credential scope."
	}
	if now := cfg.Now(); when.Before(now.Add(-maxSkew)) || when.After(now.Add(maxSkew)) {
		return "InvalidSignatureException", "Signature expired: " + r.Header.Get("X-Amz-Date") + " is now earlier or later than the allowed skew."
	}
	token := r.Header.Get("X-Amz-Security-Token")
	if cfg.SessionToken != "" && token != cfg.SessionToken {
		return "UnrecognizedClientException", "The security token included in the request is invalid."
	}
	if token != "" && !slices.Contains(a.signedHeaders, "x-amz-security-token") {
		return "InvalidSignatureException", msgBadSignature
	}

	if !signatureMatches(r, body, a, aws.Credentials{AccessKeyID: cfg.AccessKeyID, SecretAccessKey: cfg.SecretAccessKey, SessionToken: token}, when) {
		return "InvalidSignatureException", msgBadSignature
	}
	return "", ""
}

// signatureMatches rebuilds r from its signed parts only, signs it again
// with AWS's signer and creds, and compares the result with a.
func signatureMatches(r *http.Request, body []byte, a sigV4Auth, creds aws.Credentials, when time.Time) bool {
	u := &url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	re := &http.Request{Method: r.Method, URL: u, Host: r.Host, Header: http.Header{}}
	for _, name := range a.signedHeaders {
		switch name {
		case "host":
		case "content-length":
			re.ContentLength = r.ContentLength
		default:
			vals := r.Header.Values(name)
			if len(vals) == 0 {
				return false
			}
			re.Header[http.CanonicalHeaderKey(name)] = vals
		}
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, re, hex.EncodeToString(sum[:]), a.service, a.region, when); err != nil {
		return false
	}
	want, ok := parseSigV4(re.Header.Get("Authorization"))
	return ok && slices.Equal(want.signedHeaders, a.signedHeaders) && hmac.Equal([]byte(want.signature), []byte(a.signature))
}
