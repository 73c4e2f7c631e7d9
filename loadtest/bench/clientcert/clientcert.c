/*
 * clientcert.so: an LD_PRELOAD shim that makes wrk (which has no client
 * certificate option) present one. Every SSL_CTX the program creates gets the
 * chain in $BENCH_CLIENT_CERT (PEM, leaf first) and the key in $BENCH_CLIENT_KEY.
 * Built by loadtest/bench/run: cc -O2 -shared -fPIC -o clientcert.so clientcert.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_method_st SSL_METHOD;

static void load_client_cert(SSL_CTX *ctx)
{
	const char *cert = getenv("BENCH_CLIENT_CERT"), *key = getenv("BENCH_CLIENT_KEY");
	if (ctx == NULL || cert == NULL || key == NULL)
		return;
	int (*chain)(SSL_CTX *, const char *) =
		(int (*)(SSL_CTX *, const char *))dlsym(RTLD_DEFAULT, "SSL_CTX_use_certificate_chain_file");
	int (*pkey)(SSL_CTX *, const char *, int) =
		(int (*)(SSL_CTX *, const char *, int))dlsym(RTLD_DEFAULT, "SSL_CTX_use_PrivateKey_file");
	if (chain == NULL || pkey == NULL || chain(ctx, cert) != 1 || pkey(ctx, key, 1 /* PEM */) != 1) {
		fprintf(stderr, "clientcert.so: cannot load %s and %s\n", cert, key);
		exit(2);
	}
}

SSL_CTX *SSL_CTX_new(const SSL_METHOD *method)
{
	static SSL_CTX *(*real)(const SSL_METHOD *);
	if (real == NULL)
		real = (SSL_CTX * (*)(const SSL_METHOD *)) dlsym(RTLD_NEXT, "SSL_CTX_new");
	SSL_CTX *ctx = real(method);
	load_client_cert(ctx);
	return ctx;
}
