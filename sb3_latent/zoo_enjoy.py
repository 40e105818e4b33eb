"""``python -m sb3_latent.zoo_enjoy ...``: rl_zoo3's enjoy script with our algorithms registered."""

from sb3_latent.zoo.rl_zoo3_enjoy import main

if __name__ == "__main__":
    main()
