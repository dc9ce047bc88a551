// Package secrets turns the service's one secret key (LOYALTY_SECRET_KEY)
// into purpose-bound keys: an AEAD for WeChat secrets stored in the database,
// and HMAC keys for signing tokens. Keys are derived with HKDF so one purpose
// can never be confused with another.
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
	"strings"
)

// MinKeyLength is the shortest accepted secret key.
const MinKeyLength = 32

// version prefixes every ciphertext so the scheme can change later without
// guessing what an old value is.
const version = "v1:"

// ErrDecrypt is returned when a stored value cannot be decrypted (wrong key
// or tampered data).
var ErrDecrypt = errors.New("secrets: cannot decrypt (wrong LOYALTY_SECRET_KEY or corrupted value)")

// Keyring holds the keys derived from the secret key.
type Keyring struct {
	master []byte
	aead   cipher.AEAD
}

// New derives the keyring from the secret key.
func New(secretKey string) (*Keyring, error) {
	if len(secretKey) < MinKeyLength {
		return nil, fmt.Errorf("secrets: the secret key must be at least %d characters", MinKeyLength)
	}
	master := []byte(secretKey)
	encKey, err := hkdf.Key(sha256.New, master, nil, "loyalty/encrypt-stored-secrets", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Keyring{master: master, aead: aead}, nil
}

// Encrypt seals plaintext for storage. purpose (for example
// "merchant.oa_app_secret") is bound as associated data, so a value copied
// into another column does not decrypt. The empty string stays empty.
func (k *Keyring) Encrypt(purpose, plaintext string) (string, error) {
	if plaintext == "" {
		return "", nil
	}
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("secrets: %w", err)
	}
	sealed := k.aead.Seal(nonce, nonce, []byte(plaintext), []byte(purpose))
	return version + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// Decrypt opens a value made by Encrypt with the same purpose.
func (k *Keyring) Decrypt(purpose, stored string) (string, error) {
	if stored == "" {
		return "", nil
	}
	raw, ok := strings.CutPrefix(stored, version)
	if !ok {
		return "", ErrDecrypt
	}
	sealed, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(sealed) < k.aead.NonceSize() {
		return "", ErrDecrypt
	}
	nonce, ct := sealed[:k.aead.NonceSize()], sealed[k.aead.NonceSize():]
	plain, err := k.aead.Open(nil, nonce, ct, []byte(purpose))
	if err != nil {
		return "", ErrDecrypt
	}
	return string(plain), nil
}

// SigningKey returns a 32-byte key for one purpose (for example
// "member-token"), for HMAC signing.
func (k *Keyring) SigningKey(purpose string) []byte {
	key, err := hkdf.Key(sha256.New, k.master, nil, "loyalty/sign/"+purpose, 32)
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
