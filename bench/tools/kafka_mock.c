// A Kafka cluster for bench/backends: librdkafka's mock cluster (3 brokers in this one
// process, speaking the real protocol on loopback), since no Kafka broker is packaged.
//   kafka_mock TOPIC PARTITIONS
// Prints "bootstrap HOST:PORT,..." once it serves, then runs until SIGTERM or SIGINT.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  const char *topic = argc > 1 ? argv[1] : "sluice";
  int partitions = argc > 2 ? atoi(argv[2]) : 4;
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  // Blocked before librdkafka starts its threads, so only sigwait below sees them.
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  char err[512];
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), err, sizeof(err));
  if (rk == NULL) {
    fprintf(stderr, "kafka_mock: %s\n", err);
    return 1;
  }
  rd_kafka_mock_cluster_t *cluster = rd_kafka_mock_cluster_new(rk, 3);
  if (cluster == NULL) {
    fprintf(stderr, "kafka_mock: cannot create the mock cluster\n");
    return 1;
  }
  if (rd_kafka_mock_topic_create(cluster, topic, partitions, 3) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    fprintf(stderr, "kafka_mock: cannot create topic %s\n", topic);
    return 1;
  }
  printf("bootstrap %s\n", rd_kafka_mock_cluster_bootstraps(cluster));
  fflush(stdout);
  int sig;
  sigwait(&stop, &sig);
  rd_kafka_mock_cluster_destroy(cluster);
  rd_kafka_destroy(rk);
  return 0;
}
