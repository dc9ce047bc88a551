package secrets

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func keyring(t *testing.T, key string) *Keyring {
	t.Helper()
	k, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestEncryptRoundTripAndBinding(t *testing.T) {
	k := keyring(t, strings.Repeat("a", 32))
	enc, err := k.Encrypt("merchant.oa_app_secret", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(enc, "s3cret") || !strings.HasPrefix(enc, "v1:") {
		t.Fatalf("ciphertext %q", enc)
	}
	if got, err := k.Decrypt("merchant.oa_app_secret", enc); err != nil || got != "s3cret" {
		t.Fatalf("decrypt: %q, %v", got, err)
	}
	// Bound to its purpose: the same value in another column does not open.
	if _, err := k.Decrypt("merchant.oa_token", enc); err != ErrDecrypt {
		t.Fatalf("other purpose: %v, want ErrDecrypt", err)
	}
	// Another key does not open it either.
	if _, err := keyring(t, strings.Repeat("b", 32)).Decrypt("merchant.oa_app_secret", enc); err != ErrDecrypt {
		t.Fatalf("other key: %v, want ErrDecrypt", err)
	}
	// Tampering is detected.
	tampered := enc[:len(enc)-2] + "AA"
	if _, err := k.Decrypt("merchant.oa_app_secret", tampered); err != ErrDecrypt {
		t.Fatalf("tampered: %v, want ErrDecrypt", err)
	}
	// Two encryptions of one value differ (random nonce).
	enc2, _ := k.Encrypt("merchant.oa_app_secret", "s3cret")
	if enc2 == enc {
		t.Fatal("nonce reused")
	}
	if e, _ := k.Encrypt("p", ""); e != "" {
		t.Fatal("empty value must stay empty")
	}
}

func TestShortKeyRefused(t *testing.T) {
	if _, err := New("short"); err == nil {
		t.Fatal("want an error")
	}
}

func TestSigningKeysDifferByPurpose(t *testing.T) {
	k := keyring(t, strings.Repeat("a", 32))
	if string(k.SigningKey("member-token")) == string(k.SigningKey("other")) {
		t.Fatal("purposes share a key")
	}
	if string(k.SigningKey("member-token")) != string(keyring(t, strings.Repeat("a", 32)).SigningKey("member-token")) {
		t.Fatal("derivation is not deterministic")
	}
}

func TestLoadKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d", "secret.key")
	if _, err := LoadKeyFile(path, false); err == nil {
		t.Fatal("missing file without create must fail")
	}
	// Many processes (goroutines here) creating it at once agree on one key.
	var wg sync.WaitGroup
	keys := make([]string, 8)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := LoadKeyFile(path, true)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	for _, k := range keys {
		if k != keys[0] || len(k) < MinKeyLength {
			t.Fatalf("keys differ or short: %q", keys)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", st.Mode().Perm())
	}
	again, err := LoadKeyFile(path, false)
	if err != nil || again != keys[0] {
		t.Fatalf("reload: %q %v", again, err)
	}
}
