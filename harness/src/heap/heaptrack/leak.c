/* The program behind leak-c.stacks.txt (heaptrack 1.4):
 *   gcc -g -O1 -o leak leak.c
 *   LD_PRELOAD=/usr/lib/heaptrack/libheaptrack_preload.so DUMP_HEAPTRACK_OUTPUT=raw.\$\$ ./leak &
 *   kill -TERM $!   (after a second)
 *   /usr/lib/heaptrack/libexec/heaptrack_interpret < raw.PID > ht.txt
 *   heaptrack_print -f ht.txt --flamegraph-cost-type leaked -F leak-c.stacks.txt
 * 1000 buffers of 4096 bytes are never freed; 1000 of 100 bytes are. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
static volatile int stop; void* volatile sink;
static void on(int s){stop=1;}
__attribute__((noinline)) void leak_native_buffer(size_t n){ char*p=malloc(n); memset(p,1,n); sink=p; }
__attribute__((noinline)) void handler(void){ leak_native_buffer(4096); }
int main(){ signal(SIGTERM,on); for(int i=0;i<1000 && !stop;i++){ handler(); void*q=malloc(100); free(q);} while(!stop) usleep(10000); return 0; }
