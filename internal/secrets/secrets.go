// Package secrets turns the service's secret keys (LOYALTY_SECRET_KEY, and
// LOYALTY_SECRET_KEYS_OLD while a key is being replaced) into purpose-bound
// keys: an AEAD for WeChat secrets stored in the database, and HMAC keys for
// signing tokens. Keys are derived with HKDF so one purpose can never be
// confused with another.
//
// A keyring holds one current key, which encrypts and signs, and any number
// of old keys, which only decrypt and verify. Every ciphertext names the key
// that sealed it, so instances configured with the old key set and with the
// new one can run side by side while `loyalty secrets rotate` re-encrypts
// what is stored.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MinKeyLength is the shortest accepted secret key.
const MinKeyLength = 32

// Ciphertext formats. Every stored value starts with its format so the
// scheme can change without guessing what an old value is.
//
//	v2:<key id>:<base64url(nonce|sealed)>  associated data: purpose and owner
//	v1:<base64url(nonce|sealed)>           associated data: purpose only
//
// v1 is what versions before key rotation wrote. It is still read (with any
// key of the ring), never written: `loyalty secrets rotate` rewrites it as v2.
const (
	formatV1 = "v1:"
	formatV2 = "v2:"
)

// ErrDecrypt is returned when a stored value cannot be decrypted: it was
// sealed for another owner or column (copied from another merchant's row),
// under a key this process does not have, or it was altered.
var ErrDecrypt = errors.New("secrets: cannot decrypt: the value was sealed for another merchant or column, " +
	"under a key that is neither LOYALTY_SECRET_KEY nor in LOYALTY_SECRET_KEYS_OLD, or it is corrupted")

// Label says what a stored value is and whose it is. Both are bound to the
// ciphertext as associated data: a value copied into another column or
// another owner's row does not decrypt.
type Label struct {
	Purpose string // the column, e.g. "merchant.oa_app_secret"
	Owner   string // the row's owner, e.g. "merchant/42"
}

// associatedData encodes l unambiguously (length-prefixed parts).
func (l Label) associatedData() []byte {
	var b []byte
	for _, part := range []string{"loyalty/secret/v2", l.Purpose, l.Owner} {
		b = strconv.AppendInt(b, int64(len(part)), 10)
		b = append(b, ':')
		b = append(b, part...)
	}
	return b
}

// key is one secret key and what is derived from it.
type key struct {
	id     string // names the key in ciphertexts; derived, so it reveals nothing
	master []byte
	aead   cipher.AEAD
}

// Keyring holds the current key (keys[0]) and the old ones.
type Keyring struct {
	keys []key
}

// New builds the keyring: current encrypts and signs; old keys are kept to
// decrypt values and verify tokens made before the key changed.
func New(current string, old ...string) (*Keyring, error) {
	k := &Keyring{}
	seen := map[string]bool{}
	for i, s := range append([]string{current}, old...) {
		name := "the secret key"
		if i > 0 {
			name = fmt.Sprintf("old key %d", i)
		}
		if len(s) < MinKeyLength {
			return nil, fmt.Errorf("secrets: %s must be at least %d characters", name, MinKeyLength)
		}
		kk, err := newKey(s)
		if err != nil {
			return nil, err
		}
		if seen[kk.id] {
			return nil, fmt.Errorf("secrets: %s is given twice", name)
		}
		seen[kk.id] = true
		k.keys = append(k.keys, kk)
	}
	return k, nil
}

func newKey(secret string) (key, error) {
	master := []byte(secret)
	encKey, err := hkdf.Key(sha256.New, master, nil, "loyalty/encrypt-stored-secrets", 32)
	if err != nil {
		return key{}, err
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return key{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return key{}, err
	}
	id, err := hkdf.Key(sha256.New, master, nil, "loyalty/key-id", 8)
	if err != nil {
		return key{}, err
	}
	return key{id: hex.EncodeToString(id), master: master, aead: aead}, nil
}

// KeyID names the current key (as it appears in ciphertexts).
func (k *Keyring) KeyID() string { return k.keys[0].id }

// Encrypt seals plaintext for storage under the current key, bound to l.
// The empty string stays empty.
func (k *Keyring) Encrypt(l Label, plaintext string) (string, error) {
	if plaintext == "" {
		return "", nil
	}
	cur := k.keys[0]
	nonce := make([]byte, cur.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("secrets: %w", err)
	}
	sealed := cur.aead.Seal(nonce, nonce, []byte(plaintext), l.associatedData())
	return formatV2 + cur.id + ":" + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// Decrypt opens a value made by Encrypt with the same label, under any key
// of the ring, or an older v1 value of the same purpose (v1 did not bind
// the owner). Every failure is ErrDecrypt.
func (k *Keyring) Decrypt(l Label, stored string) (string, error) {
	if stored == "" {
		return "", nil
	}
	if rest, ok := strings.CutPrefix(stored, formatV2); ok {
		id, raw, ok := strings.Cut(rest, ":")
		if !ok {
			return "", ErrDecrypt
		}
		for _, kk := range k.keys {
			if kk.id == id {
				return open(kk.aead, raw, l.associatedData())
			}
		}
		return "", ErrDecrypt
	}
	if raw, ok := strings.CutPrefix(stored, formatV1); ok {
		for _, kk := range k.keys {
			if plain, err := open(kk.aead, raw, []byte(l.Purpose)); err == nil {
				return plain, nil
			}
		}
	}
	return "", ErrDecrypt
}

func open(aead cipher.AEAD, raw string, ad []byte) (string, error) {
	sealed, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(sealed) < aead.NonceSize() {
		return "", ErrDecrypt
	}
	nonce, ct := sealed[:aead.NonceSize()], sealed[aead.NonceSize():]
	plain, err := aead.Open(nil, nonce, ct, ad)
	if err != nil {
		return "", ErrDecrypt
	}
	return string(plain), nil
}

// Current reports whether stored is empty or already in the current format
// under the current key, so re-encrypting it would change nothing but the
// nonce. It does not check that the value opens.
func (k *Keyring) Current(stored string) bool {
	if stored == "" {
		return true
	}
	rest, ok := strings.CutPrefix(stored, formatV2)
	return ok && strings.HasPrefix(rest, k.keys[0].id+":")
}

// SigningKey returns the current 32-byte key for one purpose (for example
// "member-token"), for HMAC signing.
func (k *Keyring) SigningKey(purpose string) []byte {
	return k.keys[0].signingKey(purpose)
}

// VerifyingKeys returns the keys for one purpose that a signature may have
// been made with: the current key's first, then the old keys'. Tokens
// signed before a key change keep verifying while the old key is in the
// ring.
func (k *Keyring) VerifyingKeys(purpose string) [][]byte {
	out := make([][]byte, len(k.keys))
	for i, kk := range k.keys {
		out[i] = kk.signingKey(purpose)
	}
	return out
}

func (kk key) signingKey(purpose string) []byte {
	key, err := hkdf.Key(sha256.New, kk.master, nil, "loyalty/sign/"+purpose, 32)
	if err != nil {
		panic(err) // only fails for lengths above 255*32 bytes
	}
	return key
}

// LoadKeyFile returns the key stored at path. When the file does not exist
// and create is true it writes a new random key there (mode 0600) first;
// when create is false it returns an error wrapping os.ErrNotExist.
func LoadKeyFile(path string, create bool) (string, error) {
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		key := strings.TrimSpace(string(raw))
		if len(key) < MinKeyLength {
			return "", fmt.Errorf("secrets: %s holds a key shorter than %d characters", path, MinKeyLength)
		}
		return key, nil
	case !errors.Is(err, os.ErrNotExist) || !create:
		return "", fmt.Errorf("secrets: read key file: %w", err)
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("secrets: %w", err)
	}
	key := hex.EncodeToString(buf)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return "", fmt.Errorf("secrets: %w", err)
	}
	// Write a temporary file, then hard-link it into place: the key file
	// appears complete or not at all, and if another process won the race
	// its key is used.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret-*")
	if err != nil {
		return "", fmt.Errorf("secrets: write key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(key + "\n"); err != nil {
		_ = tmp.Close()
		return "", fmt.Errorf("secrets: write key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("secrets: write key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, os.ErrExist) {
		return LoadKeyFile(path, false)
	} else if err != nil {
		return "", fmt.Errorf("secrets: write key file: %w", err)
	}
	return key, nil
}
