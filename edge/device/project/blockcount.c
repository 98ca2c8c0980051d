/*
 * edgewise blockcount: a QEMU TCG plugin that counts how often each translated block runs
 * between two marker system calls, and writes each counted block's instruction bytes.
 *
 * The guest marks the measured region with lseek(-1, MAGIC_START, 0) and lseek(-1, MAGIC_STOP, 0)
 * (a harmless EBADF on any kernel). At the start marker every block's counter is snapshotted; at
 * the stop marker the difference is kept, so only what ran between the markers is reported.
 * Counters are inline additions (no helper call per block), exact for one executing thread.
 *
 * Output (file named by the outfile= argument), one line per block executed in the region:
 *   <vaddr hex> <executions> <instruction count> <instruction bytes hex>
 * Built against qemu-plugin.h from QEMU's source (plugin API version 1 and later).
 */
#include <glib.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MAGIC_START 0x45444745u /* "EDGE" */
#define MAGIC_STOP 0x53544f50u  /* "STOP" */
#define LSEEK_AARCH64 62

typedef struct {
    uint64_t vaddr;
    uint64_t count; /* incremented inline by the translated code */
    uint64_t at_start;
    uint64_t in_region;
    size_t n_insns;
    GByteArray *bytes;
} Block;

static GMutex lock;
static GHashTable *blocks; /* key: hash of vaddr and bytes -> Block* */
static GPtrArray *all;
static char *outfile;
static int markers_seen;

static guint block_key(uint64_t vaddr, const GByteArray *bytes)
{
    guint h = (guint)(vaddr ^ (vaddr >> 32));
    for (guint i = 0; i < bytes->len; i++) {
        h = h * 31u + bytes->data[i];
    }
    return h;
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    GByteArray *bytes = g_byte_array_new();
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        g_byte_array_append(bytes, qemu_plugin_insn_data(insn), qemu_plugin_insn_size(insn));
    }
    uint64_t vaddr = qemu_plugin_tb_vaddr(tb);
    guint key = block_key(vaddr, bytes);
    Block *b = NULL;
    g_mutex_lock(&lock);
    GPtrArray *chain = g_hash_table_lookup(blocks, GUINT_TO_POINTER(key));
    if (chain) {
        for (guint i = 0; i < chain->len && !b; i++) {
            Block *c = g_ptr_array_index(chain, i);
            if (c->vaddr == vaddr && c->bytes->len == bytes->len &&
                memcmp(c->bytes->data, bytes->data, bytes->len) == 0) {
                b = c;
            }
        }
    } else {
        chain = g_ptr_array_new();
        g_hash_table_insert(blocks, GUINT_TO_POINTER(key), chain);
    }
    if (!b) {
        b = g_new0(Block, 1);
        b->vaddr = vaddr;
        b->n_insns = n;
        b->bytes = bytes;
        g_ptr_array_add(chain, b);
        g_ptr_array_add(all, b);
    } else {
        g_byte_array_unref(bytes);
    }
    g_mutex_unlock(&lock);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->count, 1);
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6,
                       uint64_t a7, uint64_t a8)
{
    if (num != LSEEK_AARCH64 || (int64_t)a1 != -1 || (a2 != MAGIC_START && a2 != MAGIC_STOP)) {
        return;
    }
    g_mutex_lock(&lock);
    for (guint i = 0; i < all->len; i++) {
        Block *b = g_ptr_array_index(all, i);
        if (a2 == MAGIC_START) {
            b->at_start = b->count;
        } else {
            b->in_region += b->count - b->at_start;
        }
    }
    markers_seen++;
    g_mutex_unlock(&lock);
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
    FILE *f = fopen(outfile, "w");
    if (!f) {
        fprintf(stderr, "blockcount: cannot write %s\n", outfile);
        return;
    }
    g_mutex_lock(&lock);
    fprintf(f, "# markers %d blocks %u\n", markers_seen, all->len);
    for (guint i = 0; i < all->len; i++) {
        Block *b = g_ptr_array_index(all, i);
        if (!b->in_region) {
            continue;
        }
        fprintf(f, "%" PRIx64 " %" PRIu64 " %zu ", b->vaddr, b->in_region, b->n_insns);
        for (guint j = 0; j < b->bytes->len; j++) {
            fprintf(f, "%02x", b->bytes->data[j]);
        }
        fputc('\n', f);
    }
    g_mutex_unlock(&lock);
    fclose(f);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
                                           char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (g_str_has_prefix(argv[i], "outfile=")) {
            outfile = g_strdup(argv[i] + strlen("outfile="));
        } else {
            fprintf(stderr, "blockcount: unknown argument %s\n", argv[i]);
            return -1;
        }
    }
    if (!outfile) {
        fprintf(stderr, "blockcount: outfile=PATH is required\n");
        return -1;
    }
    blocks = g_hash_table_new(g_direct_hash, g_direct_equal);
    all = g_ptr_array_new();
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
