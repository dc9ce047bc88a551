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

var (
	secretCol = Label{Purpose: "merchant.oa_app_secret", Owner: "merchant/1"}
	tokenCol  = Label{Purpose: "merchant.oa_token", Owner: "merchant/1"}
)

func TestEncryptRoundTripAndBinding(t *testing.T) {
	k := keyring(t, strings.Repeat("a", 32))
	enc, err := k.Encrypt(secretCol, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(enc, "s3cret") || !strings.HasPrefix(enc, "v2:"+k.KeyID()+":") {
		t.Fatalf("ciphertext %q", enc)
	}
	if got, err := k.Decrypt(secretCol, enc); err != nil || got != "s3cret" {
		t.Fatalf("decrypt: %q, %v", got, err)
	}
	// Bound to its purpose: the same value in another column does not open.
	if _, err := k.Decrypt(tokenCol, enc); err != ErrDecrypt {
		t.Fatalf("other purpose: %v, want ErrDecrypt", err)
	}
	// Bound to its owner: copied into another merchant's row, it does not
	// open either.
	if _, err := k.Decrypt(Label{Purpose: secretCol.Purpose, Owner: "merchant/2"}, enc); err != ErrDecrypt {
		t.Fatalf("other owner: %v, want ErrDecrypt", err)
	}
	// Another key does not open it either.
	if _, err := keyring(t, strings.Repeat("b", 32)).Decrypt(secretCol, enc); err != ErrDecrypt {
		t.Fatalf("other key: %v, want ErrDecrypt", err)
	}
	// Tampering is detected, in the sealed part and in the key id.
	tampered := enc[:len(enc)-2] + "AA"
	if _, err := k.Decrypt(secretCol, tampered); err != ErrDecrypt {
		t.Fatalf("tampered: %v, want ErrDecrypt", err)
	}
	for _, bad := range []string{"v2:", "v2:" + k.KeyID(), "v2:" + k.KeyID() + ":!!", "v3:x", "plain"} {
		if _, err := k.Decrypt(secretCol, bad); err != ErrDecrypt {
			t.Fatalf("%q: %v, want ErrDecrypt", bad, err)
		}
	}
	// Two encryptions of one value differ (random nonce).
	enc2, _ := k.Encrypt(secretCol, "s3cret")
	if enc2 == enc {
		t.Fatal("nonce reused")
	}
	if e, _ := k.Encrypt(secretCol, ""); e != "" {
		t.Fatal("empty value must stay empty")
	}
}

// The owner and purpose are encoded unambiguously: moving a character from
// one to the other changes the associated data.
func TestLabelEncodingIsUnambiguous(t *testing.T) {
	k := keyring(t, strings.Repeat("a", 32))
	enc, _ := k.Encrypt(Label{Purpose: "ab", Owner: "c"}, "x")
	if _, err := k.Decrypt(Label{Purpose: "a", Owner: "bc"}, enc); err != ErrDecrypt {
		t.Fatalf("shifted label: %v", err)
	}
}

// v1 values, as versions before key rotation wrote them (purpose bound, not
// the owner), made by that code with the key "a"*32.
var v1Values = map[string]string{
	"merchant.oa_app_secret": "v1:jW2o-6eRQRjfu3j-mwmn9QfJX7tRzNx9ulwlOA2_MdIs0ZU84o3Fki5ghkPonfwZf-7sdRAU",
	"merchant.mp_app_secret": "v1:gCuJKoJ4y6JbcxF2RV9oVper3Xq9L659EEUdy0Dc4Vw7VU3n4awJAkXvpmvJUOU_w4fkUvb3",
}

func TestOldFormatIsReadNotWritten(t *testing.T) {
	a := strings.Repeat("a", 32)
	for _, k := range []*Keyring{keyring(t, a), keyringOf(t, strings.Repeat("n", 32), a)} {
		for purpose, stored := range v1Values {
			got, err := k.Decrypt(Label{Purpose: purpose, Owner: "merchant/9"}, stored)
			if err != nil || got != "old-"+purpose {
				t.Fatalf("v1 %s: %q %v", purpose, got, err)
			}
			if k.Current(stored) {
				t.Fatalf("a v1 value counts as current")
			}
		}
		// Still bound to its purpose.
		if _, err := k.Decrypt(tokenCol, v1Values["merchant.oa_app_secret"]); err != ErrDecrypt {
			t.Fatalf("v1 in another column: %v", err)
		}
	}
	if _, err := keyring(t, strings.Repeat("b", 32)).Decrypt(secretCol, v1Values["merchant.oa_app_secret"]); err != ErrDecrypt {
		t.Fatalf("v1 under an unknown key: %v", err)
	}
}

func keyringOf(t *testing.T, current string, old ...string) *Keyring {
	t.Helper()
	k, err := New(current, old...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Rotation: a ring with a new current key and the old key reads what the
// old ring wrote, writes under the new key only, and knows which values
// still need rewriting. Token keys: new signatures use the new key; the
// old key's still verify.
func TestKeyRotation(t *testing.T) {
	oldKey, newKey := strings.Repeat("o", 32), strings.Repeat("n", 32)
	before := keyring(t, oldKey)
	during := keyringOf(t, newKey, oldKey)
	after := keyring(t, newKey)
	if before.KeyID() == during.KeyID() || during.KeyID() != after.KeyID() {
		t.Fatalf("key ids %s %s %s", before.KeyID(), during.KeyID(), after.KeyID())
	}
	oldEnc, _ := before.Encrypt(secretCol, "s")
	if got, err := during.Decrypt(secretCol, oldEnc); err != nil || got != "s" {
		t.Fatalf("old value with the rotating ring: %q %v", got, err)
	}
	if during.Current(oldEnc) || !before.Current(oldEnc) {
		t.Fatal("Current does not follow the key")
	}
	if _, err := after.Decrypt(secretCol, oldEnc); err != ErrDecrypt {
		t.Fatalf("old value without the old key: %v", err)
	}
	newEnc, _ := during.Encrypt(secretCol, "s")
	if !during.Current(newEnc) || !after.Current(newEnc) {
		t.Fatal("new value not under the new key")
	}
	// An instance still on the old configuration, told about the new key as
	// an old one, reads the new values too: both run side by side.
	if got, err := keyringOf(t, oldKey, newKey).Decrypt(secretCol, newEnc); err != nil || got != "s" {
		t.Fatalf("new value on an instance that only knows the new key as old: %q %v", got, err)
	}
	if string(during.SigningKey("member-token")) != string(after.SigningKey("member-token")) {
		t.Fatal("the current key does not sign")
	}
	verify := during.VerifyingKeys("member-token")
	if len(verify) != 2 || string(verify[0]) != string(after.SigningKey("member-token")) ||
		string(verify[1]) != string(before.SigningKey("member-token")) {
		t.Fatal("verifying keys are not the current then the old ones")
	}
	// The same key twice is a configuration mistake, said as such.
	if _, err := New(newKey, oldKey, newKey); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("duplicate key: %v", err)
	}
	if _, err := New(newKey, "short"); err == nil || !strings.Contains(err.Error(), "old key 1") {
		t.Fatalf("short old key: %v", err)
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
