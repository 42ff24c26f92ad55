process.stdout.write("cmr\n");
