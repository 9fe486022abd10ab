package bedrock

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// AWS's published SigV4 example (General Reference, "Create a signed AWS
// API request": IAM ListUsers, 2015-08-30T12:36:00Z).
const (
	vectorAuthorization = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, " +
		"SignedHeaders=content-type;host;x-amz-date, " +
		"Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
	vectorSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
)

var vectorTime = time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)

func vectorRequest(t *testing.T) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	return r
}

// The signer the adapter and the mock use reproduces AWS's published
// signature.
func TestSignerMatchesPublishedVector(t *testing.T) {
	t.Parallel()
	r := vectorRequest(t)
	sum := sha256.Sum256(nil)
	err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: vectorSecret},
		r, hex.EncodeToString(sum[:]), "iam", "us-east-1", vectorTime)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Header.Get("Authorization"); got != vectorAuthorization {
		t.Fatalf("Authorization\n got %s\nwant %s", got, vectorAuthorization)
	}
}

// The mock's verifier accepts the published signature and rejects it when
// anything signed differs.
func TestVerifierOnPublishedVector(t *testing.T) {
	t.Parallel()
	creds := aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: vectorSecret}
	a, ok := parseSigV4(vectorAuthorization)
	if !ok {
		t.Fatal("published header does not parse")
	}
	tests := []struct {
		name   string
		mutate func(r *http.Request, a *sigV4Auth, c *aws.Credentials, when *time.Time)
		want   bool
	}{
		{"as published", func(*http.Request, *sigV4Auth, *aws.Credentials, *time.Time) {}, true},
		{"other secret", func(_ *http.Request, _ *sigV4Auth, c *aws.Credentials, _ *time.Time) { c.SecretAccessKey += "x" }, false},
		{"other query", func(r *http.Request, _ *sigV4Auth, _ *aws.Credentials, _ *time.Time) {
			r.URL.RawQuery = "Action=ListUsers&Version=2010-05-09"
		}, false},
		{"other content type", func(r *http.Request, _ *sigV4Auth, _ *aws.Credentials, _ *time.Time) {
			r.Header.Set("Content-Type", "text/plain")
		}, false},
		{"other second", func(_ *http.Request, _ *sigV4Auth, _ *aws.Credentials, w *time.Time) { *w = w.Add(time.Second) }, false},
		{"other signature", func(_ *http.Request, a *sigV4Auth, _ *aws.Credentials, _ *time.Time) {
			a.signature = strings.Repeat("0", 64)
		}, false},
		{"unsigned header added", func(r *http.Request, _ *sigV4Auth, _ *aws.Credentials, _ *time.Time) { r.Header.Set("X-Extra", "1") }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, aa, c, when := vectorRequest(t), a, creds, vectorTime
			r.Header.Set("X-Amz-Date", "20150830T123600Z")
			tt.mutate(r, &aa, &c, &when)
			if got := signatureMatches(r, nil, aa, c, when); got != tt.want {
				t.Fatalf("signatureMatches = %v, want %v", got, tt.want)
			}
		})
	}
}
