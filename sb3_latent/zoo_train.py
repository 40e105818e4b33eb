"""``python -m sb3_latent.zoo_train ...``: rl_zoo3's train script with our algorithms registered."""

from sb3_latent.zoo.rl_zoo3_train import main

if __name__ == "__main__":
    main()
