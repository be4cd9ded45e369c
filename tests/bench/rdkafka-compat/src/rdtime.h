/* Stand-in for librdkafka's private src/rdtime.h: everything lives in rd.h (see there). */
#include "rd.h"
