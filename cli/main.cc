// tellonce: the command-line client for operators, portals and scripts.
#include "cli/command.h"

int main(int argc, char** argv) { return tellonce::cli::RunCli(argc, argv); }
