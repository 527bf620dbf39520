/* A librdkafka producer for the Kafka bench, in the manner of librdkafka's
 * own rdkafka_performance: COUNT records of SIZE bytes to partition 0 of
 * TOPIC, acks=all, librdkafka's default batching, each value copied into
 * the client (RD_KAFKA_MSG_F_COPY, as language bindings do). The values
 * carry their index in the first 12 bytes, like the bench's kcat input.
 *
 * Usage: rdkafka_producer BOOTSTRAP TOPIC COUNT SIZE
 * Prints "cpu SECONDS" (user + system of this process) once every record
 * is acknowledged; exits 1 on any delivery error.
 *
 * Built by the bench with `cc -O2 ... -lrdkafka` (Debian: librdkafka-dev).
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static long failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->err) {
        if (failed++ == 0)
            fprintf(stderr, "delivery failed: %s\n", rd_kafka_err2str(m->err));
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s BOOTSTRAP TOPIC COUNT SIZE\n", argv[0]);
        return 2;
    }
    long count = atol(argv[3]);
    long size = atol(argv[4]);
    if (count <= 0 || size < 12) {
        fprintf(stderr, "COUNT must be > 0 and SIZE >= 12\n");
        return 2;
    }
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], err, sizeof err) ||
        rd_kafka_conf_set(conf, "acks", "all", err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    rd_kafka_topic_t *topic = rd_kafka_topic_new(rk, argv[2], NULL);
    char *value = malloc((size_t)size);
    if (!topic || !value)
        return 1;
    memset(value, 'x', (size_t)size);
    for (long i = 0; i < count; i++) {
        char index[24];
        snprintf(index, sizeof index, "%012ld", i);
        memcpy(value, index, 12);
        while (rd_kafka_produce(topic, 0, RD_KAFKA_MSG_F_COPY, value, (size_t)size, NULL, 0, NULL) == -1) {
            rd_kafka_resp_err_t e = rd_kafka_last_error();
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                fprintf(stderr, "produce: %s\n", rd_kafka_err2str(e));
                return 1;
            }
            rd_kafka_poll(rk, 10);
        }
        rd_kafka_poll(rk, 0);
    }
    if (rd_kafka_flush(rk, 120000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "flush timed out\n");
        return 1;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                 ru.ru_stime.tv_usec / 1e6;
    rd_kafka_topic_destroy(topic);
    rd_kafka_destroy(rk);
    free(value);
    if (failed) {
        fprintf(stderr, "%ld records not delivered\n", failed);
        return 1;
    }
    printf("cpu %.3f\n", cpu);
    return 0;
}
