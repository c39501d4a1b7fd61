from django.urls import path

from lists import views

urlpatterns = [
    path("", views.home),
    path("items", views.add_item),
    path("health", views.health),
    path("slow", views.slow),
]
