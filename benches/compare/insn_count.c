/*
 * A QEMU TCG plugin that counts the guest instructions a program executes, for instruction
 * counts of the aarch64 build under qemu-aarch64, where neither perf nor valgrind can count.
 *
 * Each translated block adds its instruction count to one counter every time it runs
 * (an inline add, no callback), and the total is printed to stderr at exit as
 * "guest instructions: N". A block left early by an exception still adds its full length,
 * which such a program does rarely enough not to matter. The counter is not atomic: count
 * single-threaded runs.
 *
 * The declarations below are the parts of QEMU's plugin API (include/qemu/qemu-plugin.h,
 * API version 1, QEMU 6.0 to 7.2) that this plugin uses. Debian 12 ships QEMU 7.2 built with
 * plugin support but without the header.
 *
 * Build: gcc -shared -fPIC -O2 insn_count.c -o libinsn_count.so
 * Usage: qemu-aarch64 -plugin ./libinsn_count.so PROGRAM ARGS...
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PLUGIN_EXPORT __attribute__((visibility("default")))

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_info_t;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };

typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr,
                                              uint64_t imm);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);

PLUGIN_EXPORT int qemu_plugin_version = 1;

static uint64_t executed;

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed, qemu_plugin_tb_n_insns(tb));
}

static void on_exit(qemu_plugin_id_t id, void *userdata) {
    (void)id;
    (void)userdata;
    fprintf(stderr, "guest instructions: %" PRIu64 "\n", executed);
}

PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const struct qemu_info_t *info, int argc, char **argv) {
    (void)info;
    (void)argc;
    (void)argv;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_exit, NULL);
    return 0;
}
