/* The OpenSSL floor of opening ENCSTR v2 values, for bench/sealed.py: per
 * value, one X25519 derive (the recipient's private key with the value's
 * encapsulated key), one HKDF-SHA256 (extract and expand of a 32-byte key
 * and a 12-byte nonce) and one AES-256-GCM decryption with tag check of the
 * value. That is less work than HPKE does (its KEM and key schedule run
 * several labelled HKDF steps), so it is a floor, not a competitor.
 *
 *   cc -O2 -o openssl_floor bench/openssl_floor.c -lcrypto
 *   ./openssl_floor VALUES VALUE_BYTES RUNS     # prints "<median seconds> <VALUES>"
 */
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DIE(what) do { fprintf(stderr, "openssl_floor: %s failed\n", what); exit(1); } while (0)

static EVP_PKEY *keygen(void) {
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    if (!k) DIE("keygen");
    return k;
}

static void derive(EVP_PKEY *sk, const unsigned char *peer_raw, unsigned char out[32]) {
    EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer_raw, 32);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(sk, NULL);
    size_t len = 32;
    if (!peer || !ctx || EVP_PKEY_derive_init(ctx) <= 0 || EVP_PKEY_derive_set_peer(ctx, peer) <= 0 ||
        EVP_PKEY_derive(ctx, out, &len) <= 0 || len != 32)
        DIE("derive");
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(peer);
}

static void hkdf(const unsigned char ikm[32], unsigned char out[44]) {
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    size_t len = 44;
    if (!ctx || EVP_PKEY_derive_init(ctx) <= 0 || EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) <= 0 ||
        EVP_PKEY_CTX_set1_hkdf_salt(ctx, (const unsigned char *)"", 0) <= 0 ||
        EVP_PKEY_CTX_set1_hkdf_key(ctx, ikm, 32) <= 0 ||
        EVP_PKEY_CTX_add1_hkdf_info(ctx, (const unsigned char *)"ENCSTR v2", 9) <= 0 ||
        EVP_PKEY_derive(ctx, out, &len) <= 0)
        DIE("hkdf");
    EVP_PKEY_CTX_free(ctx);
}

static int gcm(int enc, const unsigned char km[44], const unsigned char *aad, int aad_len, const unsigned char *in,
               int len, unsigned char *out, unsigned char tag[16]) {
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, ok;
    if (!c || !EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, km, km + 32, enc)) DIE("gcm init");
    if (!EVP_CipherUpdate(c, NULL, &n, aad, aad_len) || !EVP_CipherUpdate(c, out, &n, in, len)) DIE("gcm");
    if (!enc) EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag);
    ok = EVP_CipherFinal_ex(c, out + n, &n);
    if (enc) EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag);
    EVP_CIPHER_CTX_free(c);
    return ok;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: openssl_floor VALUES VALUE_BYTES RUNS\n"); return 2; }
    int values = atoi(argv[1]), bytes = atoi(argv[2]), runs = atoi(argv[3]);
    EVP_PKEY *recipient = keygen();
    unsigned char *enc = malloc((size_t)values * 32), *ct = malloc((size_t)values * bytes),
                  *tags = malloc((size_t)values * 16), *plain = malloc(bytes + 16), *out = malloc(bytes + 16);
    const unsigned char aad[] = "\x02\x2d\x35\x3d\x4a\x00\x00\x00\x0b" "db.password";
    memset(plain, 'x', bytes);
    /* Seal every value to the recipient with its own ephemeral key (not timed). */
    for (int i = 0; i < values; i++) {
        EVP_PKEY *e = keygen();
        size_t len = 32;
        unsigned char ss[32], km[44];
        EVP_PKEY_get_raw_public_key(e, enc + (size_t)i * 32, &len);
        unsigned char rpk[32];
        len = 32;
        EVP_PKEY_get_raw_public_key(recipient, rpk, &len);
        derive(e, rpk, ss);
        hkdf(ss, km);
        gcm(1, km, aad, sizeof aad - 1, plain, bytes, ct + (size_t)i * bytes, tags + (size_t)i * 16);
        EVP_PKEY_free(e);
    }
    double *times = malloc(sizeof(double) * runs);
    for (int r = 0; r < runs; r++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < values; i++) {
            unsigned char ss[32], km[44];
            derive(recipient, enc + (size_t)i * 32, ss);
            hkdf(ss, km);
            if (gcm(0, km, aad, sizeof aad - 1, ct + (size_t)i * bytes, bytes, out, tags + (size_t)i * 16) != 1)
                DIE("tag check");
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        times[r] = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    }
    qsort(times, runs, sizeof(double), cmp);
    printf("%.6f %d\n", times[runs / 2], values);
    return 0;
}
