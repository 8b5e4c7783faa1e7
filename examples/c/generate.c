/*
 * Streams a greedy continuation of a prompt with the mamba-edge C API, then proves that
 * saved state works: a second session restored from the state saved after the prompt must
 * generate exactly the same tokens.
 *
 * Usage: generate MODEL.gguf [PROMPT] [N_PREDICT]
 * Exit status: 0 when both sessions agree, 1 on any error or disagreement.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mamba_edge.h"

#define DEFAULT_PROMPT "def fibonacci(n):"
#define DEFAULT_N_PREDICT 48
#define MAX_PREDICT 4096

/* Tokens a generation produced, filled by on_token. */
typedef struct {
    uint32_t tokens[MAX_PREDICT];
    size_t n_tokens;
    int print; /* write each text piece to stdout as it arrives */
} generation;

/* Token callback: records the token and streams its text. Returning 0 continues. */
static int on_token(uint32_t token, const char *piece, size_t piece_len, void *user_data) {
    generation *gen = user_data;
    if (gen->n_tokens < MAX_PREDICT) {
        gen->tokens[gen->n_tokens++] = token;
    }
    if (gen->print) {
        fwrite(piece, 1, piece_len, stdout);
        fflush(stdout);
    }
    return 0;
}

/* Prints the failed call, the status name and the library's message. */
static int failed(const char *call, mamba_status status) {
    fprintf(stderr, "error: %s returned %s: %s\n", call, mamba_status_name(status), mamba_last_error());
    return 1;
}

#define CHECK(call)                              \
    do {                                         \
        mamba_status status_ = (call);           \
        if (status_ != MAMBA_STATUS_OK) {        \
            exit_code = failed(#call, status_);  \
            goto cleanup;                        \
        }                                        \
    } while (0)

int main(int argc, char **argv) {
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: %s MODEL.gguf [PROMPT] [N_PREDICT]\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1];
    const char *prompt = argc > 2 ? argv[2] : DEFAULT_PROMPT;
    long n_predict = argc > 3 ? strtol(argv[3], NULL, 10) : DEFAULT_N_PREDICT;
    if (n_predict < 1 || n_predict > MAX_PREDICT) {
        fprintf(stderr, "error: N_PREDICT must be between 1 and %d\n", MAX_PREDICT);
        return 2;
    }

    int exit_code = 0;
    mamba_model *model = NULL;
    mamba_session *first = NULL;
    mamba_session *second = NULL;
    uint32_t *prompt_tokens = NULL;
    uint8_t *state = NULL;
    generation *gen_first = calloc(1, sizeof *gen_first);
    generation *gen_second = calloc(1, sizeof *gen_second);
    if (gen_first == NULL || gen_second == NULL) {
        fprintf(stderr, "error: out of memory\n");
        exit_code = 1;
        goto cleanup;
    }

    /* Load the model (memory-mapped) and describe it. */
    if (mamba_api_version() != MAMBA_API_VERSION) {
        fprintf(stderr, "error: library API version %u, header %u\n", mamba_api_version(), MAMBA_API_VERSION);
        exit_code = 1;
        goto cleanup;
    }
    CHECK(mamba_model_load_file(model_path, &model));
    mamba_model_info info;
    CHECK(mamba_model_get_info(model, &info));
    fprintf(stderr, "mamba-edge %s: n_layer %u, d_model %u, d_inner %u, d_state %u, n_vocab %u, eos %d\n",
            mamba_version(), info.n_layer, info.d_model, info.d_inner, info.d_state, info.n_vocab,
            info.eos_token_id);

    /* Tokenize the prompt: the first call returns the count needed. */
    size_t n_prompt = 0;
    mamba_status status = mamba_model_tokenize(model, prompt, strlen(prompt), false, NULL, 0, &n_prompt);
    if (status != MAMBA_STATUS_BUFFER_TOO_SMALL && status != MAMBA_STATUS_OK) {
        exit_code = failed("mamba_model_tokenize", status);
        goto cleanup;
    }
    if (n_prompt == 0) {
        fprintf(stderr, "error: the prompt gave no tokens\n");
        exit_code = 1;
        goto cleanup;
    }
    prompt_tokens = malloc(n_prompt * sizeof *prompt_tokens);
    if (prompt_tokens == NULL) {
        fprintf(stderr, "error: out of memory\n");
        exit_code = 1;
        goto cleanup;
    }
    CHECK(mamba_model_tokenize(model, prompt, strlen(prompt), false, prompt_tokens, n_prompt, &n_prompt));

    /* Evaluate the prompt and save the state right after it. */
    mamba_session_params session_params = mamba_session_default_params();
    /* One thread: CI also runs this program under qemu-user, where threads are unreliable. */
    session_params.n_threads = 1;
    CHECK(mamba_session_new(model, &session_params, &first));
    CHECK(mamba_session_eval(first, prompt_tokens, n_prompt));
    size_t state_size = 0;
    CHECK(mamba_session_state_size(first, &state_size));
    state = malloc(state_size);
    if (state == NULL) {
        fprintf(stderr, "error: out of memory\n");
        exit_code = 1;
        goto cleanup;
    }
    size_t written = 0;
    CHECK(mamba_session_save_state(first, state, state_size, &written));
    fprintf(stderr, "prompt: %zu tokens; saved state: %zu bytes\n", n_prompt, written);

    /* Stream a greedy continuation from the first session. */
    mamba_sampler_params sampler = mamba_sampler_default_params();
    sampler.temperature = 0.0f;
    size_t n_generated = 0;
    gen_first->print = 1;
    fputs(prompt, stdout);
    CHECK(mamba_session_generate(first, &sampler, (size_t)n_predict, on_token, gen_first, &n_generated));
    char tail[64];
    size_t tail_len = 0;
    CHECK(mamba_session_decode_flush(first, tail, sizeof tail, &tail_len));
    fwrite(tail, 1, tail_len, stdout);
    fputc('\n', stdout);

    /* Restore the saved state into a second session and continue the same way. */
    CHECK(mamba_session_new(model, &session_params, &second));
    CHECK(mamba_session_load_state(second, state, written));
    CHECK(mamba_session_generate(second, &sampler, (size_t)n_predict, on_token, gen_second, NULL));

    if (gen_first->n_tokens != gen_second->n_tokens ||
        memcmp(gen_first->tokens, gen_second->tokens, gen_first->n_tokens * sizeof(uint32_t)) != 0) {
        fprintf(stderr, "error: the restored session generated %zu tokens that differ from the first session's %zu\n",
                gen_second->n_tokens, gen_first->n_tokens);
        exit_code = 1;
        goto cleanup;
    }
    fprintf(stderr, "restored session continued identically: %zu tokens\n", gen_first->n_tokens);

    /* Errors come back as a status plus a message; the session stays usable. */
    uint32_t bad_token = info.n_vocab;
    status = mamba_session_eval(second, &bad_token, 1);
    if (status != MAMBA_STATUS_TOKEN_OUT_OF_RANGE) {
        fprintf(stderr, "error: an out-of-range token gave %s\n", mamba_status_name(status));
        exit_code = 1;
        goto cleanup;
    }
    fprintf(stderr, "expected error: %s: %s\n", mamba_status_name(status), mamba_last_error());

cleanup:
    /* Each free accepts NULL. The sessions keep the weights alive, so order does not matter. */
    mamba_session_free(second);
    mamba_session_free(first);
    mamba_model_free(model);
    free(state);
    free(prompt_tokens);
    free(gen_second);
    free(gen_first);
    return exit_code;
}
